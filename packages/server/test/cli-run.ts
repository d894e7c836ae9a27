import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";

/** The built CLI, run as a user runs it (npm test builds first). */
export const CLI = new URL("../bin/tollgate.js", import.meta.url).pathname;

/** A scratch dir for the test file (removed after it) holding a data dir, and the CLI run on that data dir. */
export function cliOnScratchDir(prefix: string) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const dataDir = join(dir, "data");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const tollgate = (...args: string[]) => spawnCli(["--data-dir", dataDir, ...args]);
  return { dir, dataDir, tollgate };
}

/** How the CLI is run: this process's environment and working dir unless given; killed after 60 s. */
export interface CliRunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** Another user to run it as (a test run by root, whom file modes do not stop). */
  uid?: number;
  gid?: number;
}

/**
 * The CLI as a child process: its outcome once it has ended, and the `child` itself (to signal it midway).
 * Never run it synchronously: that stops the test worker's event loop for the whole run, and vitest's
 * worker, unable to report meanwhile, fails the run (`Timeout calling "onTaskUpdate"`).
 */
export function spawnCli(
  args: string[],
  { env = process.env, cwd, timeoutMs = 60_000, uid, gid }: CliRunOptions = {},
) {
  // No stdin: a read of it ends at once, never waits on this process.
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    timeout: timeoutMs,
    env,
    cwd,
    uid,
    gid,
  });
  // Decoded as a stream, so a character whose bytes span two chunks is not garbled.
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  let out = "";
  let err = "";
  child.stdout.on("data", (c: string) => {
    out += c;
  });
  child.stderr.on("data", (c: string) => {
    err += c;
  });
  const ended = new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
    child.on("close", (code) => resolve({ code, out, err })),
  );
  return Object.assign(ended, { child });
}
