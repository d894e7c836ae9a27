import { Counter, Gauge, type Registry } from "prom-client";
import { runsJobs, type ServerRole } from "../roles.js";
import type { Store } from "../store/types.js";
import { InProcessLease, type JobLease } from "./lease.js";
import { type RawFloorOf, retentionFromEnv, retentionJob } from "./retention.js";
import { type Job, JobScheduler } from "./scheduler.js";

/**
 * The jobs `tollgate serve` schedules. Today: the retention purge (when TOLLGATE_RAW_RETENTION_DAYS or
 * TOLLGATE_SUMMARY_RETENTION_MONTHS is set). A new job (summaries, alerts, …) is one more entry here.
 */
export function serverJobs(deps: { store: Store; log: (msg: string) => void; rawFloor?: RawFloorOf }): Job[] {
  const jobs: (Job | null)[] = [retentionJob(deps.store, retentionFromEnv(), deps.log, deps.rawFloor)];
  return jobs.filter((j): j is Job => j !== null);
}

/**
 * The lease a role runs its jobs under: a worker with Redis (`--redis`, TOLLGATE_REDIS_URL) shares one
 * lease with every other worker, so one runs the jobs; `all` (the single-process server, which may share
 * Redis for limits with other `all` processes that each keep their own store) and a worker without Redis
 * hold an in-process lease.
 */
export async function leaseFor(
  role: ServerRole,
  redisUrl: string | null,
  opts: { log: (msg: string) => void; ttlMs?: number },
): Promise<JobLease> {
  const url = redisUrl ?? process.env.TOLLGATE_REDIS_URL ?? null;
  if (role !== "worker" || !url) return new InProcessLease();
  const { leaseTtlFromEnv, RedisJobLease } = await import("./redis-lease.js"); // ioredis only when used
  return new RedisJobLease(url, { ttlMs: opts.ttlMs ?? leaseTtlFromEnv(), log: opts.log });
}

export interface RunningJobs {
  lease: JobLease;
  scheduler: JobScheduler;
  stop(): Promise<void>;
}

/**
 * Starts the role's jobs (none for `gateway` and `api`: null) and exposes their state: /metrics
 * `tollgate_job_lease_held` (1 while this process holds the lease) and `tollgate_job_runs_total{job,outcome}`,
 * /readyz `jobs: {lease, backend, holder, jobs}`.
 */
export async function startJobs(opts: {
  role: ServerRole;
  redisUrl: string | null;
  jobs: Job[];
  log: (msg: string) => void;
  metrics?: Registry;
  readiness?: Map<string, () => unknown>;
  leaseTtlMs?: number;
}): Promise<RunningJobs | null> {
  if (!runsJobs(opts.role)) return null;
  const lease = await leaseFor(opts.role, opts.redisUrl, { log: opts.log, ttlMs: opts.leaseTtlMs });
  let runs: Counter<"job" | "outcome"> | null = null;
  if (opts.metrics) {
    new Gauge({
      name: "tollgate_job_lease_held",
      help: "1 while this process holds the job lease (and runs the scheduled jobs), else 0",
      labelNames: ["backend"] as const,
      registers: [opts.metrics],
      collect() {
        this.set({ backend: lease.backend }, lease.held() ? 1 : 0);
      },
    });
    runs = new Counter({
      name: "tollgate_job_runs_total",
      help: "Scheduled job runs by this process, by job and outcome (ok | error)",
      labelNames: ["job", "outcome"] as const,
      registers: [opts.metrics],
    });
  }
  const scheduler = new JobScheduler(lease, opts.jobs, {
    log: opts.log,
    onRun: (job, outcome) => runs?.inc({ job, outcome }),
  });
  opts.readiness?.set("jobs", () => ({
    lease: lease.held() ? "held" : "standby",
    backend: lease.backend,
    holder: lease.holder(),
    jobs: opts.jobs.map((j) => j.name),
  }));
  if (lease.backend === "in-process" && opts.role === "worker")
    opts.log("jobs: no Redis (--redis / TOLLGATE_REDIS_URL), so this worker assumes it is the only one");
  scheduler.start();
  return { lease, scheduler, stop: () => scheduler.stop() };
}
