// Where `tollgate export` writes: a path it cannot write is said before any work, and an export that
// fails midway or is interrupted leaves neither a partial file that reads as whole nor a previous export
// overwritten.

import { execFileSync, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { CLI, cliOnScratchDir, spawnCli } from "./cli-run.js";
import { DEFAULT_WORKSPACE, firstPageServerFor, stubServerFor } from "./cli-stub-server.js";
import { filesOf } from "./export-files.js";

const { dir, dataDir, tollgate } = cliOnScratchDir("tollgate-cli-export-output-");
const failing = cliOnScratchDir("tollgate-cli-export-failing-");
firstPageServerFor(failing.dataDir, "fail");
const stalling = cliOnScratchDir("tollgate-cli-export-stalling-");
firstPageServerFor(stalling.dataDir, "stall");
const converting = cliOnScratchDir("tollgate-cli-export-converting-");

const displaced = cliOnScratchDir("tollgate-cli-export-displaced-");
/** Where `displaced`'s stub makes a directory while it answers the export: in the output's place. */
const DISPLACED_OUT = join(displaced.dir, "calls.csv");
stubServerFor(
  displaced.dataDir,
  createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/json" });
    if (req.url === DEFAULT_WORKSPACE.url) return res.end(JSON.stringify(DEFAULT_WORKSPACE.answer));
    mkdirSync(DISPLACED_OUT);
    res.end(
      JSON.stringify({
        generated_at: "2026-01-02T00:00:00.000Z",
        window: { from: "2026-01-01T00:00:00.000Z", to: "2026-01-02T00:00:00.000Z" },
        coverage: { raw_available_from: null, summary_available_from: null, truncated: false },
        columns: ["event_id"],
        total: 1,
        rows: [["only"]],
        next: null,
      }),
    );
  }),
);

/** An export of PAGES pages of 10,000 calls: enough for DuckDB's parquet conversion to take a while. */
const PAGES = 40;
stubServerFor(
  converting.dataDir,
  createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/json" });
    if (req.url === DEFAULT_WORKSPACE.url) return res.end(JSON.stringify(DEFAULT_WORKSPACE.answer));
    if (req.url?.startsWith("/api/rollups/features"))
      return res.end(
        JSON.stringify({
          window: { from: "2026-01-01T00:00:00.000Z", to: "2026-01-02T00:00:00.000Z" },
          coverage: { raw_available_from: null, summary_available_from: null, truncated: false },
          features: Array.from({ length: 10_000 }, (_, i) => ({ feature: `feature-${i}`, calls: i })),
        }),
      );
    const page = Number(new URL(req.url ?? "", "http://x").searchParams.get("cursor") ?? 0);
    res.end(
      JSON.stringify({
        generated_at: "2026-01-02T00:00:00.000Z",
        window: { from: "2026-01-01T00:00:00.000Z", to: "2026-01-02T00:00:00.000Z" },
        coverage: { raw_available_from: null, summary_available_from: null, truncated: false },
        columns: ["event_id", "user_id"],
        total: PAGES * 10_000,
        rows: Array.from({ length: 10_000 }, (_, i) => [
          `call-${page}-${i}`,
          `user-${(page * 7919 + i) ** 2}`,
        ]),
        next: page + 1 < PAGES ? String(page + 1) : null,
      }),
    );
  }),
);

/** Waits (up to 20 s) until the file `where()` names holds `text`: the export got that far. */
async function written(where: () => string, text: string): Promise<void> {
  for (const end = Date.now() + 20_000; Date.now() < end; await sleep(50))
    if (existsSync(where()) && readFileSync(where(), "utf8").includes(text)) return;
  throw new Error(`${where()} never held ${JSON.stringify(text)}`);
}

/** What follows "a device, pipe or socket)" in the refusal of an output path that is no regular file. */
const SPECIAL = "; an export is written to a file and renamed into place when complete: give a file's path";

describe("an output path that cannot be written", () => {
  it("is a usage error naming the path and why (exit 2, no stack), for every format and both exports", async () => {
    mkdirSync(dataDir); // a data dir to export from
    const outDir = join(dir, "here");
    mkdirSync(outDir);
    const aFile = join(dir, "a-file");
    writeFileSync(aFile, "not a directory\n");
    const fifo = join(dir, "a-fifo");
    execFileSync("mkfifo", [fifo]);
    for (const [args, path, why] of [
      [["calls"], join(dir, "missing", "x.csv"), "its directory does not exist"],
      [["calls"], join(aFile, "x.csv"), "its directory is not a directory"],
      [["calls", "--format", "json"], outDir, "it is a directory"],
      [["calls", "--format", "parquet"], join(dir, "missing", "x.parquet"), "its directory does not exist"],
      [["rollup", "features"], join(dir, "missing", "x.csv"), "its directory does not exist"],
      // Not renamed over: /dev/null, as root, would become a regular file.
      [["calls"], fifo, `it is not a regular file (a device, pipe or socket)${SPECIAL}`],
      [["rollup", "features"], fifo, `it is not a regular file (a device, pipe or socket)${SPECIAL}`],
      // A link to one: here the pipe the CLI's stdout is, whose link (/proc/self/fd/1) names no file.
      [["calls"], "/dev/stdout", `it is not a regular file (a device, pipe or socket)${SPECIAL}`],
    ] as const) {
      const r = await tollgate("export", ...args, "-o", path);
      expect(r.code, r.err).toBe(2);
      // After a note that the data dir's `default` workspace holds no calls (workspace-check.ts).
      expect(r.err).toMatch(/^note: workspace "default" has no calls recorded; .*\nerror: /);
      expect(r.err.endsWith(`error: cannot write ${path}: ${why}\n`), r.err).toBe(true);
    }
    expect(statSync(fifo).isFIFO()).toBe(true);
  });
});

describe("an export that fails midway", () => {
  it("keeps the file it would have replaced and leaves no partial one", async () => {
    const out = join(failing.dir, "calls.csv");
    writeFileSync(out, "the previous export\n");
    const r = await failing.tollgate("export", "calls", "-o", out);
    expect(r.code).toBe(1);
    expect(r.err).toContain("error: export failed (500): store went away");
    expect(readFileSync(out, "utf8")).toBe("the previous export\n");
    expect(readdirSync(failing.dir).filter((f) => f.startsWith("calls.csv"))).toEqual(["calls.csv"]);

    const fresh = join(failing.dir, "fresh.json");
    const again = await failing.tollgate("export", "calls", "--format", "json", "-o", fresh);
    expect(again.code).toBe(1);
    expect(existsSync(fresh)).toBe(false);
    expect(readdirSync(failing.dir).filter((f) => f.startsWith("fresh"))).toEqual([]);

    const rollup = join(failing.dir, "features.csv");
    const failed = await failing.tollgate("export", "rollup", "features", "-o", rollup);
    expect(failed.code).toBe(1);
    expect(readdirSync(failing.dir).filter((f) => f.startsWith("features"))).toEqual([]);
  });
});

describe("an export interrupted midway (Ctrl-C, SIGTERM)", () => {
  it("removes its partial file (and parquet's temp dir), keeps the previous export, exits 130 / 143", async () => {
    // The stub answers the first page, then never the second: the export is interrupted mid-way.
    const tmp = join(stalling.dir, "tmp"); // the CLI's temp dir (TMPDIR): parquet's CSV goes there
    mkdirSync(tmp);
    const env = { ...process.env, TMPDIR: tmp };
    for (const [format, signal, code] of [
      ["csv", "SIGINT", 130],
      ["json", "SIGTERM", 143],
      ["parquet", "SIGINT", 130],
    ] as const) {
      const out = join(stalling.dir, `calls.${format}`);
      writeFileSync(out, "the previous export\n");
      const run = spawnCli(
        ["--data-dir", stalling.dataDir, "export", "calls", "--format", format, "-o", out],
        { env },
      );
      // Where the calls are written as they come: `<out>.partial`, or parquet's CSV in its temp dir.
      const calls = () =>
        format === "parquet" ? join(tmp, readdirSync(tmp)[0] ?? "none", "calls.csv") : `${out}.partial`;
      await written(calls, "first");
      run.child.kill(signal);
      const r = await run;
      expect(readdirSync(stalling.dir).filter((f) => f.startsWith(`calls.${format}`))).toEqual([
        `calls.${format}`,
      ]);
      expect(readdirSync(tmp)).toEqual([]);
      expect(readFileSync(out, "utf8")).toBe("the previous export\n");
      expect(r.code, `${format} ${signal}: ${r.err}`).toBe(code);
    }
  });
});

describe("two exports to one file at once", () => {
  it("refuses the second while the first runs (exit 2: which file, who writes it, what to do), and replaces the files of one killed (kill -9), saying so", async () => {
    mkdirSync(dataDir, { recursive: true }); // a data dir to export from, with no server: exports complete
    const out = join(stalling.dir, "shared.csv");
    writeFileSync(out, "the previous export\n");
    // Stalled after its first page: a running export, its first call in `<out>.partial`.
    const first = spawnCli(["--data-dir", stalling.dataDir, "export", "calls", "-o", out, "--no-progress"]);
    await written(() => `${out}.partial`, "first");
    const second = await tollgate("export", "calls", "-o", out);
    expect(second.code, second.err).toBe(2);
    expect(second.err).toMatch(/^note: workspace "default" has no calls recorded; .*\nerror: /);
    expect(
      second.err.endsWith(
        `error: cannot write ${out}: another export (pid ${first.child.pid}) is writing it (${out}.lock); wait for it to end, or write elsewhere\n`,
      ),
      second.err,
    ).toBe(true);
    expect(readFileSync(`${out}.partial`, "utf8")).toBe("event_id\nfirst\n"); // the first's, untouched
    expect(readFileSync(out, "utf8")).toBe("the previous export\n");

    first.child.kill("SIGKILL"); // nothing of it runs after: its lock and partial files stay
    await first;
    expect(filesOf(out)).toEqual([
      "shared.csv",
      "shared.csv.lock",
      "shared.csv.meta.json.partial",
      "shared.csv.partial",
    ]);
    // A JSON export: it has no metadata file of its own, and the killed CSV export's partial one goes too.
    const next = await tollgate("export", "calls", "--format", "json", "-o", out);
    expect(next.code, next.err).toBe(0);
    expect(next.err).toContain(
      `note: an export to ${out} (pid ${first.child.pid}) ended before it finished (killed, or its machine stopped); this export replaces the partial files it left\n`,
    );
    expect(JSON.parse(readFileSync(out, "utf8")).calls).toEqual([]); // its own: no calls
    expect(filesOf(out)).toEqual(["shared.csv"]);

    // A CSV export there, then a JSON one: the CSV's metadata describes a file replaced, and goes with it.
    expect((await tollgate("export", "calls", "-o", out)).code).toBe(0);
    expect(readFileSync(out, "utf8")).toMatch(/^event_id,/); // the header of no calls
    expect(filesOf(out)).toEqual(["shared.csv", "shared.csv.meta.json"]);
    expect((await tollgate("export", "calls", "--format", "json", "-o", out)).code).toBe(0);
    expect(filesOf(out)).toEqual(["shared.csv"]);
  });
});

describe("an export interrupted while DuckDB converts it to parquet", () => {
  it("leaves nothing beside the output (no DuckDB temp file), keeps the previous export, exits 130", async () => {
    const out = join(converting.dir, "calls.parquet");
    writeFileSync(out, "the previous export\n");
    const run = converting.tollgate("export", "calls", "--format", "parquet", "-o", out);
    // DuckDB's COPY has begun once it writes a parquet file: into `<out>.partial`, or its own tmp_ beside it.
    const duckDbWriting = () =>
      readdirSync(converting.dir).some((f) => f.startsWith("tmp_")) ||
      (statSync(`${out}.partial`, { throwIfNoEntry: false })?.size ?? 0) > 0;
    for (const end = Date.now() + 30_000; !duckDbWriting() && Date.now() < end; ) await sleep(5);
    expect(duckDbWriting()).toBe(true);
    run.child.kill("SIGINT");
    const r = await run;
    expect(r.code, r.err).toBe(130);
    expect(readdirSync(converting.dir).filter((f) => f.includes("calls"))).toEqual(["calls.parquet"]);
    expect(readFileSync(out, "utf8")).toBe("the previous export\n");
  });
});

describe("an export whose file cannot grow (a full disk, or past `ulimit -f`)", () => {
  it("says so for the output file (exit 1, no raw error), keeps the previous export, leaves no partial file", async () => {
    for (const [what, format] of [
      ["calls", "csv"],
      ["calls", "json"],
      ["rollup features", "csv"],
      ["rollup features", "json"],
      ["calls", "parquet"],
    ] as const) {
      const out = join(converting.dir, `full.${format}`);
      writeFileSync(out, "the previous export\n");
      // 64 KB at most per file (bash counts 1,024-byte blocks): the stub's 400,000 calls, or its 10,000
      // features, are far more.
      const cmd = `ulimit -f 64; exec "$0" "$@"`;
      const args = [
        CLI,
        "--data-dir",
        converting.dataDir,
        "export",
        ...what.split(" "),
        "--format",
        format,
        "-o",
        out,
      ];
      const r = await new Promise<{ code: number | null; err: string }>((resolveRun) => {
        const child = spawn("bash", ["-c", cmd, process.execPath, ...args], { timeout: 60_000 });
        let err = "";
        child.stderr.on("data", (c: Buffer) => {
          err += c.toString();
        });
        child.on("close", (code) => resolveRun({ code, err }));
      });
      const why =
        "the file would pass the largest size allowed (the file system's, or `ulimit -f`); nothing was kept of it: " +
        "raise that limit, write to another file system, or export a shorter window\n";
      // parquet's calls go first to a CSV in the temp dir: that is the file that cannot grow, named as itself
      const file =
        format === "parquet"
          ? /^error: cannot write \S+\/calls\.csv \(the parquet export's temporary CSV\): /
          : null;
      if (file) expect(r.err, `${what} ${format}`).toMatch(file);
      else expect(r.err, `${what} ${format}`).toBe(`error: cannot write ${out}: ${why}`);
      expect(r.err.endsWith(`: ${why}`)).toBe(true);
      expect(r.code).toBe(1);
      expect(readdirSync(converting.dir).filter((f) => f.startsWith(`full.${format}`))).toEqual([
        `full.${format}`,
      ]);
      expect(readFileSync(out, "utf8")).toBe("the previous export\n");
    }
  });
});

describe("a parquet export whose parquet file cannot be written (DuckDB's own write: a full disk)", () => {
  it("says so for the output file as the CLI's own writes do (exit 1, not DuckDB's message), keeps the previous export, leaves no partial file", async () => {
    const out = join(converting.dir, "on-full-disk.parquet");
    writeFileSync(out, "the previous export\n");
    // Its partial file on a disk that is always full: the export opens it, DuckDB's COPY cannot write it.
    symlinkSync("/dev/full", `${out}.partial`);
    const r = await converting.tollgate("export", "calls", "--format", "parquet", "-o", out, "--no-progress");
    expect(r.err).toBe(
      `error: cannot write ${out}: the disk is full; nothing was kept of it: free some space there, or write elsewhere\n`,
    );
    expect(r.code).toBe(1);
    expect(readdirSync(converting.dir).filter((f) => f.startsWith("on-full-disk"))).toEqual([
      "on-full-disk.parquet",
    ]);
    expect(readFileSync(out, "utf8")).toBe("the previous export\n");
  });
});

describe("an export whose output's place a directory took while it ran", () => {
  it("says which file, why and what to do (exit 1, no stack), and keeps the previous metadata", async () => {
    writeFileSync(`${DISPLACED_OUT}.meta.json`, "the previous export's metadata\n");
    const r = await displaced.tollgate("export", "calls", "-o", DISPLACED_OUT);
    expect(r.err).toBe(
      `error: cannot write ${DISPLACED_OUT}: a directory is in its place; nothing was kept of it: move that directory away, or write elsewhere\n`,
    );
    expect(r.code).toBe(1);
    expect(readFileSync(`${DISPLACED_OUT}.meta.json`, "utf8")).toBe("the previous export's metadata\n");
    expect(
      readdirSync(displaced.dir)
        .filter((f) => f.startsWith("calls"))
        .sort(),
    ).toEqual(["calls.csv", "calls.csv.meta.json"]);
  });
});
