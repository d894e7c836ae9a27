import { once } from "node:events";
import { createWriteStream, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { SingleBar } from "cli-progress";
import type { Command } from "commander";
import { asTextRow } from "../query/export.js";
import type { Client } from "./client.js";
import { CliError, expectOk, noteCoverage, printJson, QUERY_FLAGS } from "./common.js";
import { dataDigest } from "./data-digest.js";
import { cleanUpOnInterrupt } from "./interrupt-cleanup.js";
import { type OutputFile, outputFile } from "./output-file.js";
import { toParquet } from "./parquet.js";
import { progressBar } from "./progress.js";
import {
  isRollup,
  ROLLUP_ROWS,
  type RollupName,
  refuseOtherRollupsFlags,
  type WindowOpts,
  windowQuery,
} from "./rollups.js";
import { makeTempDir } from "./temp-dir.js";
import { connectToRead } from "./workspace-check.js";
import { duckDbWriteFailure, writeFailure } from "./write-failure.js";

// biome-ignore lint/suspicious/noExplicitAny: API answers are read loosely
type Json = any;

const FORMATS = ["csv", "json", "parquet"] as const;
export type Format = (typeof FORMATS)[number];
const PAGE = 10_000;

export interface ExportOpts extends WindowOpts {
  out: string;
  format: string;
  progress: boolean;
  /** false (--no-formula-guard): CSV text cells as stored, for machine readers. */
  formulaGuard?: boolean;
}

/**
 * CSV cell: quoted when it must be; objects (a rollup's lists) as their JSON. None (null) is an
 * empty cell and empty text ("", a tool call's provider) a quoted one, `""`: the convention warehouse
 * loaders (COPY … CSV) and the parquet conversion read them by.
 */
function csvCell(v: unknown): string {
  if (v === null || v === undefined) return "";
  // Most cells of a calls export: never quoted, so not scanned for what would need quotes.
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  const s = typeof v === "object" ? JSON.stringify(v) : String(v);
  return s === "" || /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** What a spreadsheet runs as a formula when a cell starts with it. */
const FORMULA_START = /^[=+\-@\t\r]/;
const PLAIN_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * A CSV cell for a spreadsheet: a text value that would start a formula (an attribution header such as
 * `x-tollgate-user-id: =HYPERLINK(…)` comes from whoever calls the app) is written with a leading `'`, which
 * spreadsheets show as text. Numbers, negative ones included, are left as they are.
 */
function sheetCell(v: unknown): string {
  return typeof v === "string" && FORMULA_START.test(v) && !PLAIN_NUMBER.test(v)
    ? csvCell(`'${v}`)
    : csvCell(v);
}

/** Writes a page of export rows as the file's text; `first`: they are the file's first rows. */
type RowsText = (rows: readonly unknown[][], first: boolean) => string;

/** CSV lines: JSON columns as their JSON text, each cell as `cell` writes it. */
function csvRows(columns: readonly string[], cell: (v: unknown) => string): RowsText {
  const textRow = asTextRow(columns);
  return (rows) => rows.map((r) => `${textRow(r).map(cell).join(",")}\n`).join("");
}

/** The JSON export's calls: one object per row, its columns in order, each on a line of its own. */
function jsonCalls(columns: readonly string[]): RowsText {
  // Each call is a copy of one object of every column, filled in: building it from [column, value] pairs
  // cost twice as much. The copy's members are its own, so even a column named __proto__ is one.
  const blank = Object.fromEntries(columns.map((c) => [c, null]));
  return (rows, first) =>
    rows
      .map((r, i) => {
        const call: Record<string, unknown> = { ...blank };
        for (let c = 0; c < columns.length; c++) call[columns[c]!] = r[c];
        return `${first && i === 0 ? "" : ","}\n${JSON.stringify(call)}`;
      })
      .join("");
}

/**
 * An async file writer that respects back-pressure. A failed write (a full disk) fails the next call, said
 * as one of `out` (writeFailure): the stream reports it when it happens, perhaps after the write returned.
 * `digest`: what is written is added to it too.
 */
function fileWriter(path: string, out: string, digest: ReturnType<typeof dataDigest> | null) {
  const stream = createWriteStream(path);
  let failed: unknown = null;
  stream.on("error", (e) => {
    failed ??= writeFailure(out, e);
  });
  const check = () => {
    if (failed) throw failed;
  };
  return {
    async write(text: string) {
      check();
      // Encoded here, once for the file and its digest both (the stream would encode it otherwise).
      const bytes = Buffer.from(text);
      digest?.add(bytes);
      if (!stream.write(bytes)) await once(stream, "drain").catch(check);
      check();
    },
    async end() {
      check();
      stream.end();
      await once(stream, "finish").catch(check);
      check();
    },
  };
}

/** A summary's `meta_file`: a CSV's `<out>.meta.json`, none for a format that holds its metadata. */
const metaFile = (output: OutputFile) => (output.meta ? { meta_file: output.meta.file } : {});

/**
 * Pages through /api/export/calls into `out`. CSV and JSON are written as they come; parquet goes
 * through a CSV in a temp dir that DuckDB converts (typed columns, the metadata as key-value metadata).
 * CSV keeps its metadata in a `<out>.meta.json` beside it (a comment line would break CSV readers).
 */
export async function exportCalls(
  client: Pick<Client, "request">,
  o: ExportOpts,
  format: Format,
  pageSize = PAGE,
) {
  const q = windowQuery(o, { limit: String(pageSize) });
  const out = resolve(o.out);
  const output = outputFile(out, format === "csv");
  let tmp: string | null;
  try {
    tmp = format === "parquet" ? makeTempDir("tollgate-export-", "the parquet export's temporary CSV") : null;
  } catch (e) {
    output.discard();
    throw e;
  }
  const removeTmp = () => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  };
  const cancelCleanup = cleanUpOnInterrupt(removeTmp);
  const target = tmp ? join(tmp, "calls.csv") : output.partial;
  // A CSV's metadata, a file of its own, names the data file it describes by its size and SHA-256.
  const digest = output.meta ? dataDigest() : null;
  // parquet's CSV is a temp file of its own, maybe on another disk: a failure is said as its own
  const file = fileWriter(target, tmp ? `${target} (the parquet export's temporary CSV)` : out, digest);
  let meta: Json = null;
  let rows = 0;
  let bar: SingleBar | null = null;
  // Parquet's CSV is an intermediate DuckDB reads: its cells stay exact.
  const cell = format === "csv" && o.formulaGuard !== false ? sheetCell : csvCell;
  const pageAfter = (cursor: string | null): Promise<Json> => {
    const page = client
      .request("GET", `/api/export/calls?${q}${cursor ? `&cursor=${cursor}` : ""}`)
      .then((res) => expectOk(res, "export", QUERY_FLAGS));
    page.catch(() => {}); // awaited below; if writing fails first, it is left without an unhandled rejection
    return page;
  };
  let rowsText: RowsText | null = null;
  try {
    for (let next: Promise<Json> | null = pageAfter(null); next; ) {
      const page: Json = await next;
      if (!rowsText) {
        // The window as the first page resolved it: relative times ("30d", "now") sent again with each
        // page would move, and calls stored during the export would land past the window its meta names.
        q.set("from", page.window.from);
        q.set("to", page.window.to);
        meta = {
          generated_at: page.generated_at,
          window: page.window,
          coverage: page.coverage,
          columns: page.columns,
          rows: page.total,
        };
        if (o.progress) {
          bar = progressBar("export [{bar}] {percentage}% | {value}/{total} calls | {eta_formatted} left");
          bar?.start(page.total, 0);
        }
        await file.write(
          format === "json"
            ? `{"meta":${JSON.stringify(meta)},"calls":[`
            : `${page.columns.map(csvCell).join(",")}\n`,
        );
        rowsText = format === "json" ? jsonCalls(page.columns) : csvRows(page.columns, cell);
      }
      // The next page is asked for before this one is written: the server reads it meanwhile.
      next = page.next ? pageAfter(page.next) : null;
      await file.write(rowsText(page.rows, rows === 0));
      rows += page.rows.length;
      bar?.update(rows);
    }
    if (format === "json") await file.write("\n]}\n");
    await file.end();
    // The CSV's metadata, on the same disk: a failure is said as the export's, as its rows' would be.
    if (output.meta)
      try {
        writeFileSync(
          output.meta.partial,
          `${JSON.stringify({ ...meta, rows, formula_guard: cell === sheetCell, ...digest?.check() }, null, 2)}\n`,
        );
      } catch (e) {
        throw writeFailure(out, e);
      }
    if (tmp) {
      const files = { partial: output.partial, tempDir: dirname(tmp) };
      // DuckDB's spill files in the temp dir too, removed with it.
      await toParquet(target, output.partial, { ...meta, rows }, join(tmp, "duckdb")).catch((e) => {
        throw duckDbWriteFailure(out, files, e);
      });
    }
    output.complete();
  } finally {
    bar?.stop();
    cancelCleanup();
    removeTmp();
    output.discard(); // a failed export's partial file (none once complete)
  }
  return { file: out, format, rows, ...metaFile(output), meta };
}

/** Nested answer objects as flat columns: {cost: {nanousd, usd}} → cost.nanousd, cost.usd; lists as JSON. */
export function flatten(obj: Json, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = Array.isArray(v) ? JSON.stringify(v) : v;
  }
  return out;
}

type RollupExportOpts = ExportOpts & { by?: string };

/** One rollup answer as a table file (csv with a .meta.json, or json with its meta). */
async function exportRollup(client: Client, name: RollupName, o: RollupExportOpts, format: Format) {
  const q = windowQuery(o, { by: name === "outcomes" ? o.by : undefined });
  const out = resolve(o.out);
  const output = outputFile(out, format === "csv");
  try {
    const res: Json = expectOk(
      await client.request("GET", `/api/rollups/${name}?${q}`),
      `rollup ${name}`,
      QUERY_FLAGS,
    );
    const rows = (res[ROLLUP_ROWS[name]] as Json[]).map((r) => flatten(r));
    const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    const meta = {
      generated_at: new Date().toISOString(),
      rollup: name,
      window: res.window,
      coverage: res.coverage,
      columns,
      rows: rows.length,
    };
    const cell = o.formulaGuard !== false ? sheetCell : csvCell;
    try {
      if (format === "json") writeFileSync(output.partial, `${JSON.stringify({ meta, rows })}\n`);
      else {
        const lines = [
          columns.map(csvCell).join(","),
          ...rows.map((r) => columns.map((c) => cell(r[c])).join(",")),
        ];
        const data = Buffer.from(`${lines.join("\n")}\n`);
        const digest = dataDigest();
        digest.add(data);
        writeFileSync(output.partial, data);
        writeFileSync(
          output.meta!.partial,
          `${JSON.stringify({ ...meta, formula_guard: cell === sheetCell, ...digest.check() }, null, 2)}\n`,
        );
      }
    } catch (e) {
      throw writeFailure(out, e);
    }
    output.complete();
    return { file: out, format, rows: rows.length, ...metaFile(output), meta };
  } finally {
    output.discard(); // a failed export's partial file (none once complete)
  }
}

/** The options both exports share: the file, the window and the filters. */
function exportOptions(cmd: Command): Command {
  return (
    cmd
      .requiredOption("-o, --out <file>", "file to write")
      // No defaults sent: the server's window is the 30 days before --to (now), wherever --to is.
      .option(
        "--from <time>",
        "start: ISO date/time or a span back from now (7d, 24h); default: the 30 days before --to",
      )
      .option("--to <time>", "end (exclusive); default: now")
      .option("-w, --workspace <id>", "workspace", "default")
      .option("--customer <id>", "only this customer_id")
      .option("--feature <name>", "only this feature")
      .option("--json", "print a summary as JSON")
      .option(
        "--no-formula-guard",
        "csv: write text cells as stored (by default one starting with = + - @ gets a leading ' so a spreadsheet shows it as text)",
      )
  );
}

export function registerExport(program: Command): void {
  const cmd = program
    .command("export")
    .description("export calls (csv, json, parquet) with their window and coverage");
  exportOptions(
    cmd.command("calls").description("every call record of a time range, in the documented column order"),
  )
    .option("--format <format>", FORMATS.join(" | "), "csv")
    .option("--data-mode <mode>", "only this data_mode: real | demo | test, or all (the default: every one)")
    .option(
      "--deployment <name>",
      "only this deployment (prod counts calls without one, as the rollups do), or all (the default: every one, and calls without one)",
    )
    .option("--no-progress", "no progress bar")
    .action(async (o: ExportOpts, c: Command) => {
      if (!(FORMATS as readonly string[]).includes(o.format))
        throw new CliError(`--format must be one of ${FORMATS.join(", ")}`, 2);
      const client = await connectToRead(c, o.workspace);
      try {
        const res = await exportCalls(client, o, o.format as Format);
        if (o.json) return printJson(res);
        console.log(`${res.rows.toLocaleString("en-US")} calls → ${res.file} (${res.format})`);
        noteCoverage(res.meta.coverage);
      } finally {
        await client.close();
      }
    });
  exportOptions(
    cmd
      .command("rollup")
      .argument("<name>", Object.keys(ROLLUP_ROWS).join(" | "))
      .description("one rollup as a table (nested figures flattened: cost.nanousd, cost.usd, …)"),
  )
    .option("--format <format>", "csv | json", "csv")
    .option("--by <dimension>", "outcomes: feature | model | prompt_version")
    .option("--data-mode <mode>", "real (default) | demo | test | all")
    .option("--deployment <name>", "prod (default; records without one count as prod) | staging | … | all")
    .action(async (name: string, o: RollupExportOpts, c: Command) => {
      if (!isRollup(name))
        throw new CliError(`rollup must be one of ${Object.keys(ROLLUP_ROWS).join(", ")}`, 2);
      if (o.format !== "csv" && o.format !== "json") throw new CliError("--format must be csv or json", 2);
      refuseOtherRollupsFlags(c, name);
      const client = await connectToRead(c, o.workspace);
      try {
        const res = await exportRollup(client, name, o, o.format);
        if (o.json) return printJson(res);
        console.log(`${res.rows.toLocaleString("en-US")} rows of ${name} → ${res.file}`);
        noteCoverage(res.meta.coverage);
      } finally {
        await client.close();
      }
    });
}
