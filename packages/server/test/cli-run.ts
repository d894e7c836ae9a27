import { spawn, spawnSync } from "node:child_process";
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
  const tollgate = (...args: string[]) => {
    const res = spawnSync(process.execPath, [CLI, "--data-dir", dataDir, ...args], {
      encoding: "utf8",
      timeout: 60_000,
    });
    return { code: res.status, out: res.stdout, err: res.stderr };
  };
  /** The same, leaving this process's event loop free: for a CLI talking to a stub server of the test's. */
  const tollgateAsync = (...args: string[]) => spawnCli(["--data-dir", dataDir, ...args]);
  return { dir, dataDir, tollgate, tollgateAsync };
}

/** The CLI as a child process: its outcome once it has ended, and the `child` itself (to signal it midway). */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(process.execPath, [CLI, ...args], { timeout: 60_000, env });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const ended = new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
    child.on("close", (code) => resolve({ code, out, err })),
  );
  return Object.assign(ended, { child });
}
