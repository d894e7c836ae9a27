// tollgate serve lowers the CPU priority of its background threads (store thread, DuckDB, libuv pool, V8
// helpers) and leaves the main thread, which proxies requests, at the default.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { getPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { backgroundNiceFrom } from "../src/thread-priority.js";
import { CLI, spawnCli } from "./cli-run.js";

const running: { child: ChildProcess; dir: string }[] = [];
afterEach(() => {
  for (const { child, dir } of running.splice(0)) {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Niceness of each thread of a process, by thread id (field 19 of /proc/PID/task/TID/stat). */
function threadNiceness(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields from the 3rd on
    out.set(Number(tid), Number(fields[16]));
  }
  return out;
}

/** Starts `tollgate serve`; resolves its pid once it logs that it listens (its threads are lowered by then). */
async function serve(env: Record<string, string>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-nice-"));
  const child = spawn(process.execPath, [CLI, "--data-dir", dir, "serve", "--port", "0"], {
    stdio: ["ignore", "pipe", "ignore"],
    env: { ...process.env, ...env },
  });
  running.push({ child, dir });
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      if (out.includes('"tollgate listening"')) resolve();
    });
    child.once("exit", (code) => reject(new Error(`serve exited (${code}) before listening`)));
  });
  return JSON.parse(readFileSync(join(dir, "server.json"), "utf8")).pid;
}

describe.runIf(process.platform === "linux")("background thread priority", () => {
  // Relative to this runner's own niceness (serve inherits it): `nice npm test` must pass too.
  const base = getPriority();

  it("serve runs every thread but the main one 10 steps lower by default", async () => {
    const pid = await serve({});
    const nice = threadNiceness(pid);
    expect(nice.get(pid)).toBe(base);
    const others = [...nice].filter(([tid]) => tid !== pid).map(([, n]) => n);
    expect(others.length).toBeGreaterThan(3); // store thread, DuckDB, libuv pool, V8 helpers
    expect(new Set(others)).toEqual(new Set([Math.min(19, base + 10)]));
  }, 60_000);

  it("TOLLGATE_BACKGROUND_NICE=0 leaves every thread alone; a bad value is refused with exit code 2", async () => {
    const pid = await serve({ TOLLGATE_BACKGROUND_NICE: "0" });
    expect(new Set(threadNiceness(pid).values())).toEqual(new Set([base]));
    const dir = mkdtempSync(join(tmpdir(), "tollgate-nice-"));
    const bad = await spawnCli(["--data-dir", dir, "serve", "--port", "0"], {
      env: { ...process.env, TOLLGATE_BACKGROUND_NICE: "-5" },
    });
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("TOLLGATE_BACKGROUND_NICE must be a whole number from 0 (off) to 19");
    expect(existsSync(join(dir, "tollgate.duckdb"))).toBe(false); // refused before opening anything
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("reads TOLLGATE_BACKGROUND_NICE: default 10, 0 to 19, whole numbers only", () => {
    expect(backgroundNiceFrom({})).toBe(10);
    expect(backgroundNiceFrom({ TOLLGATE_BACKGROUND_NICE: "" })).toBe(10);
    expect(backgroundNiceFrom({ TOLLGATE_BACKGROUND_NICE: "0" })).toBe(0);
    expect(backgroundNiceFrom({ TOLLGATE_BACKGROUND_NICE: "19" })).toBe(19);
    for (const bad of ["20", "1.5", "x", "-1", " ", "0x0a", "1e1"])
      expect(() => backgroundNiceFrom({ TOLLGATE_BACKGROUND_NICE: bad })).toThrow(/0 \(off\) to 19/);
  });
});
