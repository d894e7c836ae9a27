import { keepForLimits, type RawFloor } from "../limits/raw-floor.js";
import { purgeHorizons } from "../query/coverage.js";
import type { Store } from "../store/types.js";
import { InProcessLease } from "./lease.js";
import { type Job, JobScheduler } from "./scheduler.js";

export interface RetentionSettings {
  rawDays: number | null;
  summaryMonths: number | null;
}

/** Retention settings from the environment: TOLLGATE_RAW_RETENTION_DAYS, TOLLGATE_SUMMARY_RETENTION_MONTHS. */
export function retentionFromEnv(env = process.env): RetentionSettings {
  const read = (name: string) => {
    const v = env[name];
    if (v === undefined || v === "") return null;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`${name} must be a whole number of at least 1, got ${JSON.stringify(v)}`);
    return n;
  };
  return {
    rawDays: read("TOLLGATE_RAW_RETENTION_DAYS"),
    summaryMonths: read("TOLLGATE_SUMMARY_RETENTION_MONTHS"),
  };
}

export const RETENTION_EVERY_MS = 3_600_000;

/** The raw calls limits still need (limits/raw-floor.ts), as of an instant. */
export type RawFloorOf = (now: number) => RawFloor | null;

/**
 * The retention purge as a job (null when nothing is to be purged), hourly: a purge of what is already
 * gone deletes nothing, so running often is cheap and keeps the horizon within an hour of the setting.
 * Raw calls a budget's window or an agent run still counts are kept (`floor`), and the log says why.
 */
export function retentionJob(
  store: Pick<Store, "purge">,
  settings: RetentionSettings,
  log: (msg: string) => void,
  floor: RawFloorOf = () => null,
): Job | null {
  if (settings.rawDays === null && settings.summaryMonths === null) return null;
  let told: string | null = null;
  return {
    name: "retention",
    everyMs: RETENTION_EVERY_MS,
    async run() {
      const now = Date.now();
      const horizons = purgeHorizons(now, settings.rawDays, settings.summaryMonths);
      const { rawBefore, keptFor } = keepForLimits(horizons.rawBefore, floor(now));
      if (keptFor && keptFor !== told) log(`retention: ${keptFor}`);
      told = keptFor;
      const r = await store.purge(rawBefore, horizons.summaryBefore);
      if (r.raw_deleted || r.summary_deleted)
        log(
          `retention: ${r.raw_deleted} raw calls rolled into daily summaries, ${r.summary_deleted} summary rows dropped`,
        );
    },
  };
}

/**
 * The purge of one process alone (an in-process lease): once at start and then hourly. Returns a stop
 * function. `tollgate serve` schedules it with its other jobs instead (jobs/index.ts).
 */
export function scheduleRetention(
  store: Pick<Store, "purge">,
  settings: RetentionSettings,
  log: (msg: string) => void,
): () => void {
  const job = retentionJob(store, settings, log);
  if (!job) return () => {};
  const scheduler = new JobScheduler(new InProcessLease(), [job], { log });
  scheduler.start();
  return () => void scheduler.stop();
}
