// The progress bars of long commands (export, ingest, demo) as a terminal gets them, when the command
// fails midway: the terminal is left as it was (line wrapping on), and the error is on a line of its own.
// The CLI runs under `script` (util-linux), which gives it a terminal; its server is a stub that fails
// midway (cli-stub-server.ts).
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, cliOnScratchDir } from "./cli-run.js";
import { firstPageServerFor } from "./cli-stub-server.js";

const { dir, dataDir } = cliOnScratchDir("tollgate-cli-progress-");
firstPageServerFor(dataDir, "fail");

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
