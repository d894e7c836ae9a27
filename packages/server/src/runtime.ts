import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { PricingEngine } from "@tollgate/core";
import { createApp } from "./api/app.js";
import { KeyResolver } from "./auth/keys.js";
import type { RuntimeOptions } from "./config.js";
import { lockDataDir } from "./data-dir-lock.js";
import { BatchRecords } from "./gateway/batch-results.js";
import { GatewayMetrics } from "./gateway/metrics.js";
import { Recorder } from "./gateway/recorder.js";
import { Spool } from "./gateway/spool.js";
import { IngestService } from "./ingest/service.js";
import { GroupCommitWriter } from "./ingest/writer.js";
import { SpendGuard } from "./limits/guard.js";
import { openLimitStore } from "./limits/open-limit-store.js";
import { PolicyRegistry } from "./limits/policies.js";
import { DEFAULT_SHARED_SEED } from "./limits/shared-seeds.js";
import { loadPriceBook } from "./pricebook-file.js";
import { processMetrics } from "./process-metrics.js";
import { clickHouseFromEnv, openStore } from "./store/open-store.js";
import type { Store } from "./store/types.js";
import { withTimeout } from "./with-timeout.js";

/** Everything one Tollgate process needs, wired together: store, pricing, ingest, recorder, HTTP app. */
export interface Runtime {
  app: ReturnType<typeof createApp>;
  store: Store;
  /** Stores the calls of batch results the gateway relays. */
  batches: BatchRecords;
  engine: PricingEngine;
  keys: KeyResolver;
  /** Stores gateway calls off the request path (spooling to disk when the store lags). */
  recorder: Recorder;
  metrics: GatewayMetrics;
  /** Budgets, rate limits and agent-run kill switches. */
  guard: SpendGuard;
  /** Full access to every workspace; handed only to local processes (server.json is mode 0600). */
  rootToken: string;
  /** Extra fields of the /readyz body (e.g. `jobs`: the job lease's state), by name. */
  readiness: Map<string, () => unknown>;
  close(): Promise<void>;
}

export async function openRuntime(opts: RuntimeOptions): Promise<Runtime> {
  // Settings read before anything is opened: a bad one leaves nothing behind.
  const refreshMs = policyRefreshMs();
  const passesMs = seedPassesMs();
  const engine = new PricingEngine(opts.pricebookPath ? loadPriceBook(opts.pricebookPath) : null);
  const store = await openStore(opts.dataDir, {
    thread: opts.storeThread,
    clickhouse: clickHouseFromEnv(opts.redisUrl ?? null, {
      ...process.env,
      ...(opts.clickhouseUrl ? { TOLLGATE_CLICKHOUSE_URL: opts.clickhouseUrl } : {}),
    }),
  });
  let unlock = () => {};
  let guard: SpendGuard;
  const writer = new GroupCommitWriter(store, { concurrency: store.writeConcurrency });
  let spool: Spool;
  try {
    if (store.shared) unlock = lockDataDir(opts.dataDir);
    spool = new Spool(join(opts.dataDir, "spool"), (m) => console.error(`recording: ${m}`));
    const registry = await PolicyRegistry.open(store, opts.limitsPath ?? null);
    guard = new SpendGuard(await openLimitStore(opts.redisUrl ?? null), registry, store, engine, {
      // Every replica learns of a new budget within a refresh: two of them make the grace period.
      sharedSeed: { graceMs: 2 * refreshMs, passesMs },
    });
    await guard.rebuild(["default"]);
  } catch (e) {
    unlock();
    await store.close();
    throw e;
  }
  const rootToken = `tg_root_${randomBytes(24).toString("base64url")}`;
  const keys = new KeyResolver(store, rootToken);
  const recorder = new Recorder(writer, engine, spool, {
    onError: (e) => console.error(`recording: ${(e as Error).message}`),
  });
  // The calls an earlier process spooled and never stored neither hold up the start nor go uncounted: they
  // are counted from the spool while serving, then stored. Shared (Redis) counters counted them live.
  recorder.storeEarlierSpool(guard.store.volatile ? guard.countUnstored(spool.records()) : Promise.resolve());
  // A budget added while running is seeded with the store's commits and the spool's replay paused, and the
  // calls not stored yet.
  guard.attachRecording({
    quiet: (fn) => writer.quiet(() => spool.hold(fn)),
    waiting: () => recorder.waiting(),
    spoolFiles: () => spool.files(),
    spooled: (file) => spool.recordsOf(file),
    storedIds: (ws, ids) => store.storedIds(ws, ids),
  });
  const ingest = new IngestService(writer, engine, guard);
  const batches = new BatchRecords(ingest, recorder);
  const metrics = new GatewayMetrics({
    spoolDepth: () => recorder.spoolDepth,
    spoolFailing: () => recorder.spoolFailing,
    pending: () => recorder.pending,
    batchResultsWaiting: () => batches.waiting,
  });
  const readiness = new Map<string, () => unknown>();
  /**
   * "ok", or why the store is unreachable or refuses commits. Only a gateway replica stays ready without
   * it: it keeps proxying and spools its records (a load balancer should not pull it); every other role is
   * not ready, and says the store is why.
   */
  let probing: Promise<number> | null = null;
  const storeState = async (): Promise<string> => {
    try {
      // One probe at a time: while a silent store keeps one waiting, later /readyz calls share it.
      probing ??= store.count({ workspaceId: "default", from: Date.now() }).finally(() => {
        probing = null;
      });
      // A store that hangs rather than refuses must not hang the probe: a probe with no answer is a failed one.
      await withTimeout(probing, READY_STORE_TIMEOUT_MS, "no answer");
    } catch (e) {
      const why = (e as Error).message;
      if (opts.role !== "gateway") throw new Error(`store: ${why}`);
      return `unreachable, ${callsKept()}: ${why}`;
    }
    // A store that reads and does not write (a full disk): the probe's read passes, the calls' commits fail.
    // A refusal with no commit tried since it for a while says nothing of the store now.
    const refused = writer.refused;
    if (!refused || Date.now() - refused.at > COMMIT_REFUSAL_FRESH_MS) return "ok";
    const why = `commits refused since ${new Date(refused.since).toISOString()}: ${refused.message}`;
    if (opts.role !== "gateway") throw new Error(`store: ${why}`);
    return `${why}, ${callsKept()}`;
  };
  const callsKept = () =>
    recorder.spoolRefusal === null
      ? "calls spooled to disk"
      : "calls wait in memory (the disk refuses the spool)";
  const stopPolicyRefresh = store.shared ? refreshPolicies(guard, refreshMs) : () => {};
  const app = createApp({
    role: opts.role ?? "all",
    ingest,
    guard,
    events: store,
    keyStore: store,
    keys,
    engine,
    ops: {
      metrics: [metrics.registry, processMetrics()],
      ready: async () => {
        return {
          store: await storeState(),
          spool_depth: recorder.spoolDepth,
          ...spoolState(recorder.spoolRefusal),
          recorder_pending: recorder.pending,
          ...Object.fromEntries([...readiness].map(([name, get]) => [name, get()])),
        };
      },
    },
  });
  return {
    app,
    store,
    batches,
    engine,
    keys,
    recorder,
    metrics,
    guard,
    rootToken,
    readiness,
    close: async () => {
      stopPolicyRefresh();
      await recorder.flush({ deadlineMs: SHUTDOWN_STORE_WAIT_MS });
      recorder.close();
      await guard.close();
      await store.close();
      unlock();
    },
  };
}

/** How often a replica re-reads policies from a shared store (TOLLGATE_POLICY_REFRESH_MS, default 5 s). */
export function policyRefreshMs(env = process.env): number {
  const v = env.TOLLGATE_POLICY_REFRESH_MS;
  if (v === undefined || v === "") return 5_000;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 100)
    throw new Error(
      `TOLLGATE_POLICY_REFRESH_MS must be a whole number of ms, at least 100, got ${JSON.stringify(v)}`,
    );
  return n;
}

/**
 * When the seed of a budget added on Redis is read again, in ms after it starts counting live
 * (TOLLGATE_BUDGET_SEED_PASSES_MS, comma-separated, ascending; default 5 s, 30 s, 5 min, 1 h): calls made
 * before then and stored after the last read do not count against it.
 */
export function seedPassesMs(env = process.env): number[] {
  const v = env.TOLLGATE_BUDGET_SEED_PASSES_MS;
  if (v === undefined || v === "") return [...DEFAULT_SHARED_SEED.passesMs];
  const ms = v.split(",").map((p) => Number(p.trim()));
  if (!ms.every((n, i) => Number.isInteger(n) && n >= 0 && (i === 0 || n > ms[i - 1]!)))
    throw new Error(
      `TOLLGATE_BUDGET_SEED_PASSES_MS must be ascending whole numbers of ms, comma-separated, got ${JSON.stringify(v)}`,
    );
  return ms;
}

/**
 * With a shared store, budgets, rate limits and agent ceilings set through any replica's API reach every
 * replica within one refresh. A failed refresh keeps the policies in force and tries again.
 */
export function refreshPolicies(guard: SpendGuard, everyMs: number): () => void {
  let running = false;
  const timer = setInterval(async () => {
    if (running) return;
    running = true;
    try {
      // Not awaited: each budget's instant is fixed (or learned) at once, not after the first seeds of
      // the others read the store (the later ones' instants passing meanwhile: their calls here lost).
      for (const b of await guard.registry.refresh()) void guard.budgetAdded(b.workspace, b.id);
    } catch (e) {
      console.error(`policies not refreshed from the store (retrying): ${(e as Error).message}`);
    } finally {
      running = false;
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * How long a commit the store refused keeps /readyz saying so when no commit was tried since: a role a load
 * balancer pulls for it gets no traffic to try one, so it must not stay pulled long after the disk has room
 * (a gateway's spool replay tries every 2 s while the refusals last).
 */
const COMMIT_REFUSAL_FRESH_MS = 15_000;

/** /readyz's `spool` field, when the disk refuses it: calls wait in memory, at risk in a crash. */
const spoolState = (refusal: string | null) =>
  refusal === null ? {} : { spool: `refused, calls wait in memory: ${refusal}` };

/** How long /readyz waits for the store before reporting it unreachable (any role). */
const READY_STORE_TIMEOUT_MS = 2_000;
/** How long shutdown waits for the store to take the calls in memory before spooling them instead. */
const SHUTDOWN_STORE_WAIT_MS = 10_000;
