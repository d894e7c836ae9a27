// The job lease on a real redis-server: one holder at a time, takeover after a release or a kill -9,
// scheduled jobs run once per interval across workers and never on two at once, and a holder that loses
// Redis stops running jobs.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InProcessLease } from "../src/jobs/lease.js";
import { RedisJobLease } from "../src/jobs/redis-lease.js";
import { type Job, JobScheduler } from "../src/jobs/scheduler.js";
import type { Json } from "./helpers.js";
import { startRedis, type TestRedis } from "./redis-server.js";

const CLI = fileURLToPath(new URL("../bin/tollgate.js", import.meta.url));
const TTL = 600;

let redis: TestRedis;
let client: Redis;
let dir: string;
let seq = 0;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  dir = mkdtempSync(join(tmpdir(), "tollgate-jobs-"));
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  client?.disconnect();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A fresh lease key per test: tests share one Redis. */
const freshKey = () => `test:lease:{jobs-${++seq}}`;
const newLease = (key: string, url = redis.url, ttlMs = TTL) => {
  const lease = new RedisJobLease(url, { key, ttlMs });
  cleanups.push(() => lease.release());
  return lease;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A job that counts its runs across every scheduler, and how many ran at once. */
function countingJob(everyMs: number, runMs: number) {
  const runs: { worker: string; at: number }[] = [];
  let active = 0;
  let maxActive = 0;
  const job = (worker: string): Job => ({
    name: "count",
    everyMs,
    async run() {
      runs.push({ worker, at: Date.now() });
      maxActive = Math.max(maxActive, ++active);
      await sleep(runMs);
      active--;
    },
  });
  return { job, runs, maxActive: () => maxActive };
}

describe("job lease (Redis)", () => {
  it("two leases on one Redis: exactly one holds; after a release the other takes over within ttl", async () => {
    const key = freshKey();
    const a = newLease(key);
    const b = newLease(key);
    a.start(() => {});
    b.start(() => {});
    await until(() => a.held() || b.held(), 2000, "a holder");
    const end = Date.now() + 2 * TTL; // several renewals: still one holder, always the same
    const first = a.held() ? a : b;
    while (Date.now() < end) {
      expect(Number(a.held()) + Number(b.held())).toBe(1);
      expect(first.held()).toBe(true);
      await sleep(15);
    }
    expect(await client.get(key)).toBe(first.holderId);
    expect(await client.pttl(key)).toBeGreaterThan(0);
    const other = first === a ? b : a;
    expect(other.holder()).toBe(first.holderId);

    const released = Date.now();
    await first.release();
    expect(first.held()).toBe(false);
    await until(() => other.held(), TTL, "the takeover");
    expect(Date.now() - released).toBeLessThan(TTL);
    expect(await client.get(key)).toBe(other.holderId);
  });

  it("a scheduler per worker: the job runs once per interval across both, never on both at once", async () => {
    const key = freshKey();
    const every = 150;
    const counting = countingJob(every, 40);
    // The starts as the scheduler records them in the lease: the job itself starts a Redis round trip later.
    const recorded: number[] = [];
    const schedulers = ["w1", "w2"].map((w) => {
      const lease = newLease(key);
      const recordRun = lease.recordRun.bind(lease);
      lease.recordRun = async (job, at) => {
        const ok = await recordRun(job, at);
        if (ok) recorded.push(at);
        return ok;
      };
      return new JobScheduler(lease, [counting.job(w)], { log: () => {} });
    });
    for (const s of schedulers) s.start();
    await until(() => counting.runs.length >= 5, 3000, "five runs");
    const holder = schedulers.find((s) => s.lease.held())!;
    const standby = schedulers.find((s) => s !== holder)!;
    expect(standby.lease.held()).toBe(false);
    await holder.stop(); // a rolling restart: the other worker takes over and keeps the schedule
    const handover = counting.runs.length;
    await until(() => counting.runs.length >= handover + 5, 3000, "five runs after the handover");
    await standby.stop();

    const runs = counting.runs;
    expect(counting.maxActive()).toBe(1);
    expect(new Set(runs.slice(0, handover).map((r) => r.worker)).size).toBe(1);
    expect(new Set(runs.slice(handover).map((r) => r.worker)).size).toBe(1);
    expect(runs[handover]!.worker).not.toBe(runs[0]!.worker);
    expect(recorded).toHaveLength(runs.length);
    for (let i = 1; i < recorded.length; i++) {
      const gap = recorded[i]! - recorded[i - 1]!;
      expect(gap, `run ${i}`).toBeGreaterThanOrEqual(every); // once per interval, handover included
      expect(gap, `run ${i}`).toBeLessThan(every + TTL); // and the schedule goes on
    }
  });

  it("Redis stopped: the holder stops running jobs at once; Redis back: it holds again and resumes", async () => {
    const own = await startRedis();
    cleanups.push(() => own.stop());
    const counting = countingJob(50, 1);
    const lease = newLease(freshKey(), own.url);
    const scheduler = new JobScheduler(lease, [counting.job("w")], { log: () => {} });
    scheduler.start();
    await until(() => counting.runs.length >= 3, 2000, "three runs");

    const stopped = Date.now();
    await own.stop();
    await until(() => !lease.held(), TTL, "the lease to drop");
    const lostAt = Date.now();
    expect(lostAt - stopped).toBeLessThan(TTL); // at the next renewal, before the key could expire
    const runsAtLoss = counting.runs.length;
    await sleep(2 * TTL);
    expect(counting.runs.length).toBe(runsAtLoss); // no runs while Redis is gone
    expect(counting.runs.every((r) => r.at <= lostAt)).toBe(true);

    const back = await startRedis({ port: own.port });
    cleanups.push(() => back.stop());
    await until(() => lease.held(), 3000, "the lease back");
    await until(() => counting.runs.length > runsAtLoss, 2000, "runs to resume");
    await scheduler.stop();
  });

  it("the in-process lease (embedded default) always holds and keeps the last runs", async () => {
    const lease = new InProcessLease();
    const counting = countingJob(60_000, 1);
    const scheduler = new JobScheduler(lease, [counting.job("solo")], { log: () => {} });
    scheduler.start();
    expect(lease.held()).toBe(true);
    await until(() => counting.runs.length === 1, 1000, "the run at start");
    const last = await lease.lastRun("count"); // recorded just before the run started
    expect(last).toBeLessThanOrEqual(counting.runs[0]!.at);
    expect(last).toBeGreaterThan(counting.runs[0]!.at - 100);
    await scheduler.stop();
    expect(lease.held()).toBe(false);
    expect(await lease.recordRun("count", Date.now())).toBe(false);
  });
});

describe("tollgate serve --role worker (two processes, one Redis)", () => {
  const LEASE_TTL = 1000;
  interface Worker {
    proc: ChildProcess;
    url: string;
  }
  async function spawnWorker(): Promise<Worker> {
    const dataDir = mkdtempSync(join(dir, "worker-"));
    const proc = spawn(
      process.execPath,
      [CLI, "--data-dir", dataDir, "--redis", redis.url, "serve", "--role", "worker", "--port", "0"],
      {
        env: {
          ...process.env,
          TOLLGATE_JOB_LEASE_TTL_MS: String(LEASE_TTL),
          TOLLGATE_RAW_RETENTION_DAYS: "30",
        },
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
    cleanups.push(async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGKILL");
      await new Promise((r) => proc.once("exit", r));
    });
    const info = join(dataDir, "server.json");
    await until(() => existsSync(info) || proc.exitCode !== null, 30_000, "the worker");
    expect(proc.exitCode).toBeNull();
    return { proc, url: JSON.parse(readFileSync(info, "utf8")).url };
  }
  const metrics = async (w: Worker) => await (await fetch(`${w.url}/metrics`)).text();
  const held = async (w: Worker) => /^tollgate_job_lease_held\{backend="redis"\} 1$/m.test(await metrics(w));
  const retentionRuns = async (w: Worker) =>
    Number(
      /^tollgate_job_runs_total\{job="retention",outcome="ok"\} (\d+)$/m.exec(await metrics(w))?.[1] ?? 0,
    );

  it("one holds and purges; kill -9 it: the other takes over after the ttl, without purging again", async () => {
    if (!existsSync(CLI.replace("bin/tollgate.js", "dist/cli.js")))
      throw new Error("build first: npm run build");
    await client.del("tollgate:lease:{jobs}", "tollgate:lease:{jobs}:runs");
    const workers = await Promise.all([spawnWorker(), spawnWorker()]);
    await until(async () => (await held(workers[0]!)) || (await held(workers[1]!)), 5000, "a holder");
    const holderIdx = (await held(workers[0]!)) ? 0 : 1;
    const holder = workers[holderIdx]!;
    const standby = workers[1 - holderIdx]!;
    expect(await held(standby)).toBe(false);
    await until(async () => (await retentionRuns(holder)) === 1, 5000, "the purge at start");
    const ready: Json = await (await fetch(`${standby.url}/readyz`)).json();
    expect(ready).toMatchObject({
      status: "ready",
      role: "worker",
      jobs: { lease: "standby", backend: "redis" },
    });
    expect(ready.jobs.holder).toBe(await client.get("tollgate:lease:{jobs}"));

    const killed = Date.now();
    holder.proc.kill("SIGKILL");
    await until(() => held(standby), LEASE_TTL + 1000, "the takeover");
    const after = Date.now() - killed;
    // not before the dead holder's key expired (its last renewal was at most ttl/3 before the kill) …
    expect(after).toBeGreaterThanOrEqual((LEASE_TTL * 2) / 3 - 50);
    // … and at most a retry after it did
    expect(after).toBeLessThan(LEASE_TTL + 400);
    // the purge ran less than its hour ago (the run time is in the lease): the new holder does not repeat it
    await sleep(200);
    expect(await retentionRuns(standby)).toBe(0);
  });
});
