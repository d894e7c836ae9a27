// A running server that accepted the connection and stopped answering (SIGSTOPped, hung) fails a command
// once it has been silent for --timeout, with what to do; an answer that keeps coming is never cut off.
import { readdirSync, readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cliOnScratchDir, spawnCli } from "./cli-run.js";
import { DEFAULT_WORKSPACE, stubServerFor } from "./cli-stub-server.js";

const { dir, tollgate } = cliOnScratchDir("tollgate-cli-timeout-");

/** Accepts connections, reads what is sent and never answers. */
const silentDir = join(dir, "silent");
stubServerFor(
  silentDir,
  createServer((socket) => socket.resume()),
);

const ROWS = 8;
const PAGE = JSON.stringify({
  generated_at: "2026-01-02T00:00:00.000Z",
  window: { from: "2026-01-01T00:00:00.000Z", to: "2026-01-02T00:00:00.000Z" },
  coverage: { raw_available_from: null, summary_available_from: null, truncated: false },
  columns: ["event_id"],
  total: ROWS,
  rows: Array.from({ length: ROWS }, (_, i) => [`call-${i}`]),
  next: null,
});

/**
 * An export whose one page comes in 10 parts 300 ms apart (3 s in all), then its end; or, asked for customer
 * `stall`, its first part and nothing more.
 */
const slowDir = join(dir, "slow");
stubServerFor(
  slowDir,
  createHttpServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/json" });
    if (req.url === DEFAULT_WORKSPACE.url) return res.end(JSON.stringify(DEFAULT_WORKSPACE.answer));
    const size = Math.ceil(PAGE.length / 10);
    const parts = req.url?.includes("customer_id=stall") ? 1 : 10;
    let i = 0;
    const next = () => {
      res.write(PAGE.slice(i * size, (i + 1) * size));
      if (++i < parts) setTimeout(next, 300);
      else if (parts === 10) res.end();
    };
    next();
  }),
);

const WHAT_TO_DO = "is `tollgate serve` running and healthy? For a long query, raise --timeout";

describe("a server that accepted the connection and never answers", () => {
  it("fails the command after --timeout (exit 1), naming the server and what to do, not after 5 minutes", async () => {
    const started = Date.now();
    const r = await spawnCli(["--data-dir", silentDir, "--timeout", "1", "spend", "--by", "feature"]);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(
      new RegExp(
        `^error: the Tollgate server of ${silentDir} at http://127\\.0\\.0\\.1:\\d+ \\(pid ${process.pid}\\) did not answer within 1 s: `,
      ),
    );
    expect(r.err).toContain(`${WHAT_TO_DO} (seconds; now 1).`);
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it("TOLLGATE_TIMEOUT sets it too; --timeout wins over it", async () => {
    const env = { ...process.env, TOLLGATE_TIMEOUT: "0.5" };
    const fromEnv = await spawnCli(["--data-dir", silentDir, "rollup", "features"], { env });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.err).toContain("did not answer within 0.5 s");
    const flag = await spawnCli(["--data-dir", silentDir, "--timeout", "1.5", "runs", "kill", "r1"], { env });
    expect(flag.code).toBe(1);
    expect(flag.err).toContain("did not answer within 1.5 s");
  });
});

describe("the timeout is for silence, not length", () => {
  it("an export whose answer keeps coming for 3 s is not cut off by --timeout 1", async () => {
    const out = join(dir, "slow.csv");
    const r = await spawnCli([
      "--data-dir",
      slowDir,
      "--timeout",
      "1",
      "export",
      "calls",
      "-o",
      out,
      "--json",
    ]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ rows: ROWS });
    expect(readFileSync(out, "utf8").trimEnd().split("\n")).toHaveLength(ROWS + 1);
  });

  it("an answer that stops midway fails once silent for --timeout", async () => {
    const out = join(dir, "stalled.csv");
    const r = await spawnCli([
      ...["--data-dir", slowDir, "--timeout", "1", "export", "calls", "-o", out],
      ...["--customer", "stall"],
    ]);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toContain("did not answer within 1 s");
    expect(readdirSync(dir).filter((f) => f.startsWith("stalled"))).toEqual([]);
  });
});

describe("a bad --timeout or TOLLGATE_TIMEOUT", () => {
  it("is a usage error naming where it came from (exit 2), before anything is asked", async () => {
    for (const value of ["abc", "0", "-1", "1s", "", "9999999"]) {
      const r = await tollgate("--timeout", value, "spend", "--by", "feature");
      expect(r.code, `--timeout ${JSON.stringify(value)}: ${r.err}`).toBe(2);
      expect(r.err).toBe(
        `error: --timeout must be a number of seconds above 0, at most 2147483, got ${JSON.stringify(value)}\n`,
      );
    }
  });

  it("from the environment too", async () => {
    const bad = await spawnCli(["--data-dir", silentDir, "spend", "--by", "feature"], {
      env: { ...process.env, TOLLGATE_TIMEOUT: "soon" },
    });
    expect(bad.code).toBe(2);
    expect(bad.err).toBe(
      'error: TOLLGATE_TIMEOUT must be a number of seconds above 0, at most 2147483, got "soon"\n',
    );
  });
});

describe("tollgate --help", () => {
  it("gives --timeout's default and purge's own, which waits for the purge to be done", async () => {
    const help = await tollgate("--help");
    expect(help.code).toBe(0);
    // Commander wraps the text to the terminal's width: read it as one line.
    expect(help.out.replace(/\s+/g, " ")).toContain("(env TOLLGATE_TIMEOUT; default 30, purge 3600)");
  });
});
