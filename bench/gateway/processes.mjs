// Child processes of the benchmarks: the mock upstream, `tollgate serve`, and their cleanup (children are
// stopped and temp dirs removed when the benchmark exits).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sleep } from "./load.mjs";

const repo = fileURLToPath(new URL("../../", import.meta.url));

export const children = [];
export const tmpDirs = [];
export function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
}
process.on("exit", cleanup);
/** Stops the children and waits (up to 15 s) for them to exit, so a profiled gateway can write its profile. */
export async function shutdown() {
  await Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(resolve, 15_000);
          c.once("exit", () => {
            clearTimeout(t);
            resolve();
          });
          c.kill("SIGTERM");
        }),
    ),
  );
  cleanup();
}
process.on("SIGINT", () => process.exit(130));

/** Keeps the last `max` characters a child wrote, for error reports. */
export function tail(stream, max = 8000) {
  const t = { text: "" };
  stream?.on("data", (d) => {
    t.text = (t.text + d.toString()).slice(-max);
  });
  return t;
}

export async function waitFor(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function startMock({ json, sse, gapMs }) {
  return startMockScript(new URL("./mock-upstream.mjs", import.meta.url), [
    "--json",
    json,
    "--sse",
    sse,
    `--gap-ms=${gapMs}`, // one argument: a negative value must not read as an option
  ]);
}

/** A mock upstream script in a process of its own; it prints {"port": N} once listening. */
export async function startMockScript(script, args = []) {
  const child = spawn(process.execPath, [fileURLToPath(script), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const port = await new Promise((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl !== -1) resolve(JSON.parse(buf.slice(0, nl)).port);
    });
    child.once("exit", (code) => reject(new Error(`mock upstream exited (${code})`)));
  });
  return { pid: child.pid, port, origin: `http://127.0.0.1:${port}` };
}

/**
 * `tollgate serve` on a fresh data dir; `args` go before `serve` (e.g. --limits FILE --redis URL), `serveArgs`
 * after it (e.g. --demo), `nodeFlags` before the script (e.g. --inspect=127.0.0.1:0).
 */
export async function startTollgate(
  mockOrigin,
  { args = [], serveArgs = [], env = {}, nodeFlags = [] } = {},
) {
  const dataDir = mkdtempSync(join(tmpdir(), "tollgate-bench-gw-"));
  tmpDirs.push(dataDir);
  const child = spawn(
    process.execPath,
    [
      // e.g. BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the gateway under load
      ...(process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(" ").filter(Boolean) : []),
      ...nodeFlags,
      join(repo, "packages/server/bin/tollgate.js"),
      "--data-dir",
      dataDir,
      ...args,
      "serve",
      "--port",
      "0",
      ...serveArgs,
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        TOLLGATE_OPENAI_BASE_URL: `${mockOrigin}/v1`,
        TOLLGATE_ANTHROPIC_BASE_URL: `${mockOrigin}/v1`,
        ...env,
      },
    },
  );
  const { out, err, exited } = track(child);
  const info = await waitFor(
    () => {
      if (exited()) throw new Error(`tollgate serve ${exited()}: ${err.text || out.text}`);
      const p = join(dataDir, "server.json");
      return existsSync(p) && JSON.parse(readFileSync(p, "utf8"));
    },
    60_000,
    "tollgate server.json",
  );
  return {
    pid: info.pid,
    childPid: child.pid,
    url: info.url.replace(/\/+$/, ""),
    token: info.token,
    out,
    err,
    dataDir,
  };
}

/** Registers a child for cleanup and keeps the tail of its output and how it exited, if it did. */
export function track(child) {
  children.push(child);
  let exited = null;
  child.once("exit", (code, sig) => {
    exited = `exit ${code ?? sig}`;
  });
  return { out: tail(child.stdout), err: tail(child.stderr), exited: () => exited };
}

/** A throwaway redis-server on a free port (no persistence), or null when redis-server is not installed. */
export async function startRedis() {
  if (spawnSync("redis-server", ["--version"]).error) return null;
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  children.push(child);
  for (let i = 0; i < 200; i++) {
    if (spawnSync("redis-cli", ["-p", String(port), "ping"], { encoding: "utf8" }).stdout?.trim() === "PONG")
      return { url: `redis://127.0.0.1:${port}`, pid: child.pid };
    await sleep(50);
  }
  throw new Error("redis-server did not start");
}
