import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { DuckDbStore } from "./duckdb/store.js";
import { ThreadStore } from "./duckdb/thread-store.js";
import type { Store } from "./types.js";

const THREAD_ENTRY = new URL("./duckdb/thread-entry.js", import.meta.url);

/**
 * The embedded store, on its own thread when running from the built package (the thread needs the
 * compiled entry file), else in-process (tests running the TypeScript sources). TOLLGATE_STORE_THREAD=0|1
 * overrides: the thread keeps DuckDB off the gateway's event loop (latency), in-process costs less CPU per
 * ingested event (bulk ingest). Same interface either way.
 */
export function openStore(dataDir: string, opts: { thread?: boolean } = {}): Promise<Store> {
  const env = process.env.TOLLGATE_STORE_THREAD;
  const thread = opts.thread ?? (env === undefined ? existsSync(fileURLToPath(THREAD_ENTRY)) : env !== "0");
  return thread ? ThreadStore.open(dataDir, THREAD_ENTRY) : DuckDbStore.open(dataDir);
}
