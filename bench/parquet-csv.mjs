// A synthetic calls export's CSV for the parquet benchmark: every export column (EXPORT_COLUMNS, in order) in
// csvCell's dialect, the wide ones (usage_raw, metadata, tags) as JSON text making ~2 KB a row, as a busy
// workspace's calls are, or more (a long prompt kept in the metadata); rows in (ts_start, event_id) order, as
// the export writes them.

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { EXPORT_COLUMNS, exportColumnType } from "../packages/server/dist/query/export.js";

const cell = (s) => (s === "" || /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);

/** Text of about `bytes` for call `i`, as varied as a prompt: compression does not shrink it to nothing. */
const promptText = (i, bytes) =>
  Array.from({ length: Math.ceil(bytes / 8) }, (_, k) =>
    ((i + 1) * 2654435761 + k * 40503).toString(36).slice(-7),
  ).join(" ");

/**
 * Call `i`'s value of `column`: varied enough that parquet's dictionaries and compression do not erase it.
 * `promptBytes`: a prompt of that size in its metadata (0: none, the ~2 KB calls).
 */
function value(column, i, promptBytes) {
  switch (column) {
    case "event_id":
      return `0190d8e2-7c4a-7000-8000-${String(i).padStart(12, "0")}`;
    case "ts_start":
      return String(1_767_225_600_000 + i * 7);
    case "usage_raw":
      return cell(
        JSON.stringify({
          id: `chatcmpl-${i.toString(36)}${"x".repeat(20)}`,
          usage: {
            prompt_tokens: i % 9000,
            completion_tokens: i % 700,
            total_tokens: (i % 9000) + (i % 700),
          },
          system_fingerprint: `fp_${(i * 2654435761).toString(16)}`,
          choices: Array.from({ length: 6 }, (_, k) => ({ index: k, finish_reason: "stop", logprobs: null })),
          note: `${(i * 40503).toString(36)} `.repeat(60),
        }),
      );
    case "metadata":
      return cell(
        JSON.stringify({
          session: `s-${i % 5000}`,
          route: `/api/v1/items/${i % 997}`,
          trace: `${i}`.repeat(20),
          ...(promptBytes ? { prompt: promptText(i, promptBytes) } : {}),
        }),
      );
    case "tags":
      return cell(
        JSON.stringify({ team: `team-${i % 17}`, env: "prod", release: `2026.${i % 12}.${i % 31}` }),
      );
  }
  switch (exportColumnType(column)) {
    case "BIGINT":
      return String((i * 31 + column.length) % 100_000);
    case "BOOLEAN":
      return i % 3 === 0 ? "true" : "false";
    default:
      return `${column}-${i % 113}`;
  }
}

/** Writes `rows` synthetic calls as the export's CSV at `path`, each with a prompt of `promptBytes`. */
export async function writeCallsCsv(path, rows, promptBytes = 0) {
  const out = createWriteStream(path);
  out.write(`${EXPORT_COLUMNS.join(",")}\n`);
  for (let i = 0; i < rows; i++) {
    if (!out.write(`${EXPORT_COLUMNS.map((c) => value(c, i, promptBytes)).join(",")}\n`))
      await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}
