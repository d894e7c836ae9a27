// Exports keep empty text apart from none: a tool call's provider and model are "" (the record names
// none), its user_id is null (never given). Parquet and JSON hold both as they are; a CSV writes "" as a
// quoted empty cell and none as an empty one, as warehouse loaders (COPY … CSV) read them.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { appClient } from "../src/cli/client.js";
import { exportCalls, type Format } from "../src/cli/export.js";
import { EXPORT_COLUMNS, exportColumnType } from "../src/query/export.js";
import { type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const dir = mkdtempSync(join(tmpdir(), "tollgate-export-empty-"));
const ts = Date.now() - 60_000;
const TEXT_COLUMNS = EXPORT_COLUMNS.filter((c) => exportColumnType(c) === "VARCHAR");

beforeAll(async () => {
  rt = await openTestRuntime();
  const res = await postEvents(rt.app, rt.rootToken, [
    validRecord({ ts_start: ts, kind: "tool", provider: undefined, model: undefined, api: undefined }),
    validRecord({ ts_start: ts + 1, user_id: "u1", feature: "chat" }),
  ]);
  expect(res.json.rejected).toBe(0);
});
afterAll(async () => {
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

const exported = async (format: Format) => {
  const out = join(dir, `calls.${format}`);
  const opts = { out, format, progress: false, workspace: "default", formulaGuard: false };
  await exportCalls(appClient(rt), opts, format);
  return out;
};

/** The export's text columns read back by DuckDB, one object per call in start order. */
async function readBack(sql: string): Promise<Record<string, unknown>[]> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const conn = await db.connect();
  try {
    const cols = TEXT_COLUMNS.map((c) => `"${c}"`).join(", ");
    return (await conn.runAndReadAll(`SELECT ${cols} FROM ${sql} ORDER BY ts_start`)).getRowObjectsJS();
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

it('JSON: a tool call\'s provider and model are "", its user_id null, as the API answers', async () => {
  const { calls } = JSON.parse(readFileSync(await exported("json"), "utf8"));
  expect(calls[0]).toMatchObject({ kind: "tool", provider: "", model: "", api: null, user_id: null });
  expect(calls[1]).toMatchObject({ provider: "openai", user_id: "u1" });
});

it('parquet: every text column is as in the JSON export, "" and null alike', async () => {
  const { calls } = JSON.parse(readFileSync(await exported("json"), "utf8"));
  const asText = (v: unknown) => (v === null || typeof v === "string" ? v : JSON.stringify(v));
  const expected = calls.map((c: Json) => Object.fromEntries(TEXT_COLUMNS.map((k) => [k, asText(c[k])])));
  const parquet = await readBack(`'${await exported("parquet")}'`);
  expect(parquet).toEqual(expected);
  expect(parquet[0]).toMatchObject({ provider: "", model: "", api: null, user_id: null });
});

it('CSV: "" is a quoted empty cell and none an empty one, which a loader reading quoted nulls as text tells apart', async () => {
  const out = await exported("csv");
  const [header, tool] = readFileSync(out, "utf8").split("\n");
  const cells = tool!.split(","); // no cell of this row holds a comma, quote or newline of its own
  const cell = (c: string) => cells[header!.split(",").indexOf(c)];
  expect([cell("provider"), cell("model"), cell("api"), cell("user_id")]).toEqual(['""', '""', "", ""]);
  const csv = await readBack(`read_csv('${out}', all_varchar = true, allow_quoted_nulls = false)`);
  const parquet = await readBack(`'${await exported("parquet")}'`);
  expect(csv).toEqual(parquet);
});
