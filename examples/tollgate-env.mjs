// Where the examples send their records: $TOLLGATE_URL with $TOLLGATE_API_KEY (an ingest key from
// `npx tollgate keys create --workspace default --role ingest`). For local development without a key, the local admin
// token of a `tollgate serve` running in ./.tollgate is used.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

export function tollgateEnv() {
  const info = join(process.env.TOLLGATE_DATA_DIR ?? ".tollgate", "server.json");
  const local = existsSync(info) ? JSON.parse(readFileSync(info, "utf8")) : null;
  const url = process.env.TOLLGATE_URL ?? local?.url ?? "http://127.0.0.1:4242";
  const apiKey = process.env.TOLLGATE_API_KEY ?? local?.token;
  if (!apiKey) {
    console.error(
      "Set TOLLGATE_API_KEY (npx tollgate keys create --workspace default --role ingest), or run `npx tollgate serve` here.",
    );
    process.exit(2);
  }
  return { url, apiKey };
}
