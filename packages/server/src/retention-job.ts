import { purgeHorizons } from "./query/coverage.js";
import type { Store } from "./store/types.js";

/** Retention settings from the environment: TOLLGATE_RAW_RETENTION_DAYS, TOLLGATE_SUMMARY_RETENTION_MONTHS. */
export function retentionFromEnv(env = process.env): {
  rawDays: number | null;
  summaryMonths: number | null;
} {
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

const HOUR_MS = 3_600_000;

/**
 * Runs the purge once at start and then hourly (a purge of what is already gone deletes nothing, so
 * running often is cheap and keeps the horizon within an hour of the setting). Returns a stop function.
 */
export function scheduleRetention(
  store: Pick<Store, "purge">,
  settings: { rawDays: number | null; summaryMonths: number | null },
  log: (msg: string) => void,
): () => void {
  if (settings.rawDays === null && settings.summaryMonths === null) return () => {};
  const run = async () => {
    const { rawBefore, summaryBefore } = purgeHorizons(Date.now(), settings.rawDays, settings.summaryMonths);
    try {
      const r = await store.purge(rawBefore, summaryBefore);
      if (r.raw_deleted || r.summary_deleted)
        log(
          `retention: ${r.raw_deleted} raw calls rolled into daily summaries, ${r.summary_deleted} summary rows dropped`,
        );
    } catch (e) {
      log(`retention purge failed (will retry in an hour): ${(e as Error).message}`);
    }
  };
  void run();
  const timer = setInterval(() => void run(), HOUR_MS);
  timer.unref();
  return () => clearInterval(timer);
}
