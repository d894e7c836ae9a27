// The progress bars of long commands (export, ingest, demo) as a terminal gets them, when the command
// fails midway: the terminal is left as it was (line wrapping on), and the error is on a line of its own.
// The CLI runs under `script` (util-linux), which gives it a terminal; its server is a stub of this test's
// that answers the first page of an export and fails after.
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, cliOnScratchDir } from "./cli-run.js";

const { dir } = cliOnScratchDir("tollgate-cli-progress-");
const dataDir = join(dir, "data");
let server: Server;

beforeAll(async () => {
  server = createServer((req, res) => {
    const reply = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    req.resume();
    if (req.url?.startsWith("/api/export/calls") && !req.url.includes("cursor="))
      return reply(200, {
        generated_at: new Date().toISOString(),
        window: { from: "2026-01-01T00:00:00.000Z", to: "2026-01-02T00:00:00.000Z" },
        coverage: { raw_available_from: null, summary_available_from: null, truncated: false },
        columns: ["event_id"],
        total: 2,
        rows: [["first"]],
        next: "second-page",
      });
    reply(500, { error: { type: "api_error", code: "internal", message: "store went away" } });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  mkdirSync(dataDir, { recursive: true });
  // A live pid (this test's) and the stub's URL: the CLI takes it for the data dir's running server.
  writeFileSync(
    join(dataDir, "server.json"),
    JSON.stringify({ pid: process.pid, url: `http://127.0.0.1:${port}`, token: "tg_root_x", role: "all" }),
  );
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** The CLI on a terminal: what the terminal received (stdout and stderr together), and the exit code. */
function onTerminal(...args: string[]): Promise<{ code: number | null; screen: string }> {
  const command = [process.execPath, CLI, "--data-dir", dataDir, ...args]
    .map((a) => `'${a.replaceAll("'", "'\\''")}'`)
    .join(" ");
  const child = spawn("script", ["-qec", command, "/dev/null"], { stdio: ["ignore", "pipe", "pipe"] });
  let screen = "";
  child.stdout.on("data", (c: Buffer) => {
    screen += c.toString();
  });
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, screen })));
}

const WRAP_OFF = "\u001b[?7l";

describe("a long command that fails midway, on a terminal", () => {
  const file = join(dir, "calls.jsonl");
  writeFileSync(file, '{"event_id":"x"}\n');
  for (const [name, args, error] of [
    ["export calls", ["export", "calls", "-o", join(dir, "out.csv")], "error: export failed (500)"],
    ["ingest", ["ingest", file], "error: batch ending at line 1 failed (500)"],
    ["demo", ["demo", "--days", "2", "--calls-per-day", "10"], "error: demo ingest failed (500)"],
  ] as const)
    it(`${name}: its bar drew, the terminal keeps line wrapping, the error starts a line`, async () => {
      const r = await onTerminal(...args);
      expect(r.code, r.screen).toBe(1);
      expect(r.screen).toMatch(/\[[=-]+\]/); // the bar was drawn
      expect(r.screen).not.toContain(WRAP_OFF);
      expect(r.screen).toMatch(new RegExp(`(^|\\n)${error.replace(/[()]/g, "\\$&")}`));
    });
});
