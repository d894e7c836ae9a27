// usage_raw is the provider's usage as sent, any JSON value: a CSV or parquet export writes it as JSON
// text, so a string "5" and a number 5 stay apart (both were written 5). The JSON export holds the value.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { appClient } from "../src/cli/client.js";
import { exportCalls, type Format } from "../src/cli/export.js";
import { openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const dir = mkdtempSync(join(tmpdir(), "tollgate-export-usage-raw-"));
const ts = Date.now() - 60_000;
/** Records of kind tool keep usage_raw as information (nothing is normalized from it). */
const USAGE_RAW = ["5", 5, { n: 5 }, "=1+1", null];

beforeAll(async () => {
  rt = await openTestRuntime();
  const records = USAGE_RAW.map((usage_raw, i) =>
    validRecord({ ts_start: ts + i, kind: "tool", provider: undefined, model: undefined, usage_raw }),
  );
  const res = await postEvents(rt.app, rt.rootToken, records);
  expect(res.json.rejected).toBe(0);
});
afterAll(async () => {
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

const exported = async (format: Format, formulaGuard = false) => {
  const out = join(dir, `calls.${format}`);
  await exportCalls(
    appClient(rt),
    { out, format, progress: false, workspace: "default", formulaGuard },
    format,
  );
  return out;
};

/** usage_raw of each call, in start order, as DuckDB reads it back from the file. */
async function usageRawOf(source: string): Promise<unknown[]> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const conn = await db.connect();
  try {
    const res = await conn.runAndReadAll(`SELECT usage_raw FROM ${source} ORDER BY ts_start`);
    return res.getRowsJS().map((r) => r[0]);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

const AS_JSON_TEXT = ['"5"', "5", '{"n":5}', '"=1+1"', null];

it("JSON: usage_raw as sent", async () => {
  const { calls } = JSON.parse(readFileSync(await exported("json"), "utf8"));
  expect(calls.map((c: { usage_raw: unknown }) => c.usage_raw)).toEqual(USAGE_RAW);
});

it("CSV (with or without the formula guard) and parquet: usage_raw as JSON text, none as none", async () => {
  for (const guard of [false, true]) {
    const csv = await exported("csv", guard);
    const read = `read_csv('${csv}', all_varchar = true, allow_quoted_nulls = false)`;
    expect(await usageRawOf(read), `formula guard ${guard}`).toEqual(AS_JSON_TEXT);
  }
  expect(await usageRawOf(`'${await exported("parquet")}'`)).toEqual(AS_JSON_TEXT);
});
