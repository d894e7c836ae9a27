import { randomUUID } from "node:crypto";
import {
  type Ceilings,
  ceilingsHold,
  type HeldCeiling,
  type KillReason,
  minuteOf,
  NO_HOLD,
  RATE_WINDOW_MS,
  type RunHold,
  type RunUsage,
  tokenCount,
} from "@tollgate/core";
import type { Redis } from "ioredis";
import { connectRedis, redisClient } from "../redis-connect.js";
import { throttleKey } from "./admission-plan.js";
import { levelWindow } from "./memory-store.js";
import { LEASE_CALLS, LEASE_ROOM, type Lease, LeaseBook, type LeaseUse, leasable } from "./redis-leases.js";
import { ADMIT, CONSUME, DOUBT, HOLD_APART, RELEASE, SEED, SETTLE, STATUS } from "./redis-scripts.js";
import { RetryQueue } from "./retry-queue.js";
import { holdsOf, runHoldKeys } from "./run-holds.js";
import type {
  AdmitRequest,
  AdmitResult,
  BucketRef,
  BucketStatus,
  ChargeRequest,
  HeldReservation,
  LevelChange,
  LimitStore,
  RunStatus,
  SeedTotal,
  SettleRequest,
  SettleResult,
} from "./types.js";

type ScriptCall = (...args: (string | number)[]) => Promise<string[]>;
/** How often the summed cost of calls admitted from leases is written to Redis. */
const CONSUME_EVERY_MS = 20;

interface PendingConsume {
  workspace: string;
  bucket: SettleRequest["buckets"][number];
  leaseId: string;
  actual: bigint;
  release: boolean;
  /** Each settle waiting on this entry, with its bucket's index in its own request. */
  waiters: { resolve: (change: LevelChange | null) => void; index: number }[];
}

type ScriptName =
  | "tgAdmit"
  | "tgSettle"
  | "tgConsume"
  | "tgRelease"
  | "tgStatus"
  | "tgSeed"
  | "tgDoubt"
  | "tgHoldApart";

/** Reservations to take back from a bucket: leases, and a failed admission's own reservation. */
interface Holds {
  workspace: string;
  key: string;
  leases: string[];
  reservation?: { id: string; amount: bigint };
  /** The bucket is a run's hold (run-holds.ts): it goes once it holds nothing. */
  runHold?: true;
}

/** Collects the keys of one script call; the spec refers to them by 1-based index. */
class Keys {
  readonly list: string[] = [];
  constructor(private readonly prefix: string) {}
  add(k: string): number {
    return this.list.push(this.prefix + k);
  }
}

const strCeilings = (c: Ceilings) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, String(v)]));

/**
 * Limits shared by every gateway replica. Keys are `tg:{<workspace>}:…`: the braces are a Redis Cluster
 * hash tag, so all keys one call touches live in one slot and a script may use them together.
 */
export class RedisLimitStore implements LimitStore {
  readonly name = "redis";
  readonly volatile = false;
  /** Redis keeps each marker until it lapses. */
  readonly markersKeptAfter = Number.NEGATIVE_INFINITY;

  private constructor(private readonly redis: Redis) {
    redis.defineCommand("tgAdmit", { lua: ADMIT });
    redis.defineCommand("tgSettle", { lua: SETTLE });
    redis.defineCommand("tgConsume", { lua: CONSUME });
    redis.defineCommand("tgRelease", { lua: RELEASE });
    redis.defineCommand("tgStatus", { lua: STATUS });
    redis.defineCommand("tgSeed", { lua: SEED });
    redis.defineCommand("tgDoubt", { lua: DOUBT });
    redis.defineCommand("tgHoldApart", { lua: HOLD_APART });
    this.#sweeper = setInterval(() => this.#leases.sweep(Date.now()), 500);
    this.#sweeper.unref();
  }

  readonly #leases = new LeaseBook((leases) => void this.#release(leases.map(leaseHolds)));
  /**
   * Lease consumption and give-backs, retried until Redis answers when they fail: else the spend would
   * never reach the budgets, and held reservations would last their TTL. In order, so a lease's
   * consumption is written before its allowance goes back.
   */
  readonly #writes = new RetryQueue((m) => console.error(m));
  readonly #sweeper: NodeJS.Timeout;
  readonly #pending = new Map<string, PendingConsume>();
  #flushTimer: NodeJS.Timeout | null = null;
  /** Admissions that went to Redis (those admitted from a lease make no round trip). */
  admitRoundTrips = 0;

  static async connect(url: string): Promise<RedisLimitStore> {
    // No offline queue, no resend: when Redis is down a call fails fast and the budget's fail mode decides.
    const redis = redisClient(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0, // a resent script is not idempotent: fail instead
      commandTimeout: 1000,
      connectTimeout: 2000,
    });
    await connectRedis(redis, url); // errors are reported per call, through the budget's fail mode
    return new RedisLimitStore(redis);
  }

  #script(name: ScriptName): ScriptCall {
    return (this.redis as unknown as Record<string, ScriptCall>)[name]!.bind(this.redis);
  }

  /**
   * Hard-cap-only calls are admitted from this process's leases when every bucket has one with room (no
   * round trip). Everything else — runs, rate limits, throttles, buckets near their cap — goes to the ADMIT
   * script, which also grants leases while a bucket has ample room.
   */
  async admit(req: AdmitRequest): Promise<AdmitResult> {
    if (this.#leases.admit(req)) return { ok: true };
    this.admitRoundTrips++;
    const keys = new Keys(`tg:{${req.workspace}}:`);
    const minute = minuteOf(req.now);
    const spec = {
      run: req.run
        ? {
            k: keys.add(req.run.key),
            ceil: strCeilings(req.run.ceilings),
            depth: req.run.depth,
            retry: req.run.retry,
            hold: ceilingsHold(req.run.ceilings) ? holdSpec(keys, req.run.key, req.run.hold) : null,
            leave: req.run.leave ? holdAmounts(req.run.leave) : null,
          }
        : null,
      rates: req.rates.map((r) => ({
        p: keys.add(`${r.key}:${minute - 1}`),
        c: keys.add(`${r.key}:${minute}`),
        limit: r.limit,
        cost: r.cost,
      })),
      buckets: req.buckets.map((b) => ({
        ...bucketKeys(keys, b),
        limit: b.limit.toString(),
        amount: b.amount.toString(),
        enforce: b.enforce,
        trpm: b.throttleRpm,
        tp: keys.add(`${throttleKey(b.key)}:${minute - 1}`),
        tc: keys.add(`${throttleKey(b.key)}:${minute}`),
        ttl: b.ttlMs,
        lease: leasable(b) ? { id: randomUUID(), want: (b.amount * LEASE_CALLS).toString() } : null,
      })),
      room: LEASE_ROOM,
    };
    const permille = Math.floor(((req.now % RATE_WINDOW_MS) * 1000) / RATE_WINDOW_MS);
    let r: string[];
    try {
      r = await this.#script("tgAdmit")(
        keys.list.length,
        ...keys.list,
        JSON.stringify(spec),
        req.now,
        req.id,
        req.expiresAt,
        permille,
      );
    } catch (e) {
      // A timed-out ADMIT still runs once Redis catches up, reserving the call and leases nobody knows of:
      // they are taken back (a no-op if it never ran; the guard's settle under the same id may win too).
      void this.#release([
        ...req.buckets.map((b, i) => ({
          workspace: req.workspace,
          key: b.key,
          leases: spec.buckets[i]!.lease ? [spec.buckets[i]!.lease!.id] : [],
          reservation: { id: req.id, amount: b.amount },
        })),
        ...runHolds(req),
      ]);
      throw e;
    }
    switch (r[0]) {
      case "ok": {
        for (const i of indices(r[1])) {
          const lease = spec.buckets[i]!.lease!;
          this.#leases.take(req, req.buckets[i]!, lease.id, BigInt(lease.want));
        }
        const throttled = indices(r[2]);
        return throttled.length ? { ok: true, throttled } : { ok: true };
      }
      case "run":
        return {
          ok: false,
          refusal: { kind: "run", kill: JSON.parse(r[1]!) as KillReason, newlyKilled: r[2] === "1" },
        };
      case "held":
        return { ok: false, refusal: { kind: "run_held", held: JSON.parse(r[1]!) as HeldCeiling } };
      case "rate":
        return {
          ok: false,
          refusal: {
            kind: "rate",
            index: Number(r[1]),
            count: Number(r[2]),
            previous: Number(r[3]),
            current: Number(r[4]),
          },
        };
      case "throttle":
        return {
          ok: false,
          refusal: { kind: "throttle", index: Number(r[1]), count: Number(r[2]), spend: BigInt(r[3]!) },
        };
      default:
        return {
          ok: false,
          refusal: { kind: "budget", index: Number(r[1]), spend: BigInt(r[2]!), reserved: BigInt(r[3]!) },
        };
    }
  }

  settle(req: SettleRequest): Promise<SettleResult> {
    const uses = this.#leases.settle(req.id);
    // A settle naming its record is held apart from its lease before (SpendGuard.settle): one per record.
    if (uses) return this.#consume(req, uses);
    const charged = req.eventId === undefined ? undefined : chargedKey(req.eventId);
    return this.#settle(req, req.id, { once: settledKey(req.id), charged });
  }

  /**
   * A call admitted from leases whose reservation outlives its reply: its worst case moves onto a
   * reservation of its own, and leaves the leases' allowance as a settled call's cost would. Kept in a
   * lease, it held the lease's room whole (up to LEASE_CALLS worst cases) until its settle. Its settle
   * is then its own reservation's. The move is written before the give-back of a lease it leaves idle.
   */
  async holdApart(workspace: string, id: string, expiresAt: number): Promise<void> {
    const uses = this.#leases.settle(id);
    if (!uses) return; // reserved on its own already, or settled
    const keys = new Keys(`tg:{${workspace}}:`);
    const spec = {
      settled: keys.add(settledKey(id)),
      id,
      exp: expiresAt,
      buckets: uses.map(({ lease, amount }) => ({
        ...reservationKeys(keys, lease.key),
        lid: lease.id,
        amount: amount.toString(),
      })),
    };
    const send = () => this.#script("tgHoldApart")(keys.list.length, ...keys.list, JSON.stringify(spec));
    const moved = this.#writes.write(`the hold of a call apart from its lease in ${workspace}`, send);
    const idle = uses.filter((use) => this.#leases.consume(use, use.amount).release);
    if (idle.length) void this.#release(idle.map((use) => leaseHolds(use.lease)));
    await moved;
  }

  /**
   * Settles calls admitted from leases. Their costs are summed per lease and written every
   * CONSUME_EVERY_MS in one script call: until then the lease's reservation in Redis still covers them,
   * so other replicas never see room that is already spent.
   */
  #consume(req: SettleRequest, uses: LeaseUse[]): Promise<SettleResult> {
    const waits = req.buckets.map((b, index) => {
      const use = uses[index]!;
      const { release } = this.#leases.consume(use, b.actual);
      const k = `${req.workspace}\u0000${b.key}\u0000${use.lease.id}\u0000${b.slots[b.slots.length - 1]}`;
      let entry = this.#pending.get(k);
      if (!entry) {
        entry = {
          workspace: req.workspace,
          bucket: b,
          leaseId: use.lease.id,
          actual: 0n,
          release: false,
          waiters: [],
        };
        this.#pending.set(k, entry);
      }
      entry.actual += b.actual;
      entry.release ||= release;
      entry.bucket = b;
      return new Promise<LevelChange | null>((resolve) => entry.waiters.push({ resolve, index }));
    });
    this.#flushTimer ??= setTimeout(() => this.#flush(), CONSUME_EVERY_MS);
    return Promise.all(waits).then((changes) => ({
      changes: changes.filter((c): c is LevelChange => c !== null),
      killed: null,
    }));
  }

  /**
   * Sends the summed lease consumption (one script call per workspace); a level change goes to the last
   * call. One that fails is retried until Redis answers, its settles waiting for it.
   */
  #flush(): Promise<void> {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    const pending = byWorkspace(this.#pending.values());
    this.#pending.clear();
    return Promise.all(
      [...pending].map(([ws, entries]) => {
        const keys = new Keys(`tg:{${ws}}:`);
        const spec = {
          // One marker per flush: a retry of one that ran all the same (its reply lost) changes nothing.
          once: keys.add(`consumed:${randomUUID()}`),
          buckets: entries.map(({ bucket: b, leaseId, actual, release }) => ({
            ...bucketKeys(keys, b),
            lid: leaseId,
            actual: actual.toString(),
            release,
            steps: b.steps.map(String),
            win: levelWindow(b.slots),
            ttl: b.ttlMs,
            spendOnly: b.spendOnly,
          })),
        };
        const report = (changes: LevelChange[]) =>
          entries.forEach((e, i) => {
            const change = changes.find((c) => c.index === i);
            for (const [k, w] of e.waiters.entries())
              w.resolve(change && k === e.waiters.length - 1 ? { ...change, index: w.index } : null);
          });
        const args = [keys.list.length, ...keys.list, JSON.stringify(spec)];
        const send = async () => report(levelChanges(await this.#script("tgConsume")(...args)));
        return this.#writes.write(`the lease consumption in ${ws}`, send, () => report([]));
      }),
    ).then(() => {});
  }

  /** Gives reservations back; one that cannot be given back now is retried until Redis answers. */
  async #release(holds: Holds[]): Promise<void> {
    // Pending consumption first (same connection, so Redis runs it first; or, retried, in the queue before
    // the give-back): a lease's allowance is never given back before the spend it covered is recorded.
    const flushed = this.#pending.size ? this.#flush() : Promise.resolve();
    await Promise.all(
      [...byWorkspace(holds)].map(([ws, list]) => {
        const keys = new Keys(`tg:{${ws}}:`);
        const spec = { leases: [] as object[], holds: [] as object[] };
        for (const h of list) {
          const { m, z, l } = reservationKeys(keys, h.key);
          for (const lid of h.leases) spec.leases.push({ m, l, z, lid });
          if (h.reservation)
            spec.holds.push({
              m,
              z,
              id: h.reservation.id,
              amount: h.reservation.amount.toString(),
              run: h.runHold ?? false,
            });
        }
        const send = () => this.#script("tgRelease")(keys.list.length, ...keys.list, JSON.stringify(spec));
        return this.#writes.write(`the give-back of reservations in ${ws}`, send);
      }),
    );
    await flushed;
  }

  releaseHolds(workspace: string, holds: readonly HeldReservation[]): Promise<void> {
    return this.#release(
      holds.map((h) => ({ workspace, key: h.key, leases: [], reservation: { id: h.id, amount: h.amount } })),
    );
  }

  charge(req: ChargeRequest): Promise<SettleResult> {
    return this.#settle(req, "", {
      once: chargedKey(req.eventId),
      onceMs: chargedMs(req),
      doubt: doubtKey(req.eventId),
      doubted: !!req.doubted,
    });
  }

  async doubt(workspace: string, eventIds: readonly string[], until: number, now: number): Promise<void> {
    if (!eventIds.length) return;
    const keys = new Keys(`tg:{${workspace}}:`);
    for (const id of eventIds) {
      keys.add(doubtKey(id));
      keys.add(chargedKey(id));
    }
    await this.#script("tgDoubt")(keys.list.length, ...keys.list, Math.max(1, until - now), now);
  }

  async inDoubt(workspace: string, eventIds: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (!eventIds.length) return out;
    // One read for them all (one slot: the workspace's hash tag). A doubt of a version before the instant
    // was kept holds "1": in doubt since ever.
    const since = await this.redis.mget(eventIds.map((id) => `tg:{${workspace}}:${doubtKey(id)}`));
    eventIds.forEach((id, i) => {
      const at = since[i];
      if (at != null) out.set(id, Number(at));
    });
    return out;
  }

  /**
   * Settles a reservation (`id`) or charges a call ('' for none), once per marker `once` (kept `onceMs`;
   * absent: an hour); a settle naming its record adds spend once per the record's charge marker
   * (`charged`). A charge takes its call out of doubt, and a doubted one applies only to a call in doubt.
   */
  async #settle(
    req: Omit<SettleRequest, "id">,
    id: string,
    markers: { once: string; onceMs?: number; charged?: string; doubt?: string; doubted?: boolean },
  ): Promise<SettleResult> {
    const keys = new Keys(`tg:{${req.workspace}}:`);
    const spec = {
      once: keys.add(markers.once),
      onceMs: markers.onceMs,
      // Absent, not null, where not given (cjson's null is true in Lua).
      charged: markers.charged === undefined ? undefined : keys.add(markers.charged),
      chargedMs: markers.charged === undefined ? undefined : chargedMs(req),
      doubt: markers.doubt === undefined ? undefined : keys.add(markers.doubt),
      doubted: markers.doubted ?? false,
      buckets: req.buckets.map((b) => {
        return {
          ...bucketKeys(keys, b),
          reserved: b.reserved.toString(),
          actual: b.actual.toString(),
          steps: b.steps.map(String),
          win: levelWindow(b.slots),
          ttl: b.ttlMs,
          spendOnly: b.spendOnly,
        };
      }),
      rates: req.tokenRates.map((t) => {
        const count = tokenCount(t.tokens, t.held, req.now);
        const c = keys.add(`${t.key}:${count.minute}`);
        // Its hold given back, should its record be charged already (same minute: it depends on the hold).
        const back = markers.charged === undefined ? undefined : tokenCount(0, t.held, req.now).add;
        return { c, tokens: count.add, back };
      }),
      run: req.run
        ? {
            k: keys.add(req.run.key),
            ceil: strCeilings(req.run.ceilings),
            cost: req.run.cost.toString(),
            tokens: req.run.tokens,
            tools: req.run.toolCalls,
            llm: req.run.llmCalls,
            retries: req.run.retries,
            depth: req.run.depth,
            held: req.run.held ? holdSpec(keys, req.run.key, req.run.held) : null,
            start: req.run.startedAt,
          }
        : null,
    };
    const r = await this.#script("tgSettle")(
      keys.list.length,
      ...keys.list,
      JSON.stringify(spec),
      req.now,
      id,
    );
    return { changes: levelChanges(r), killed: r[0] ? (JSON.parse(r[0]) as KillReason) : null };
  }

  async buckets(workspace: string, refs: BucketRef[], now: number): Promise<BucketStatus[]> {
    const keys = new Keys(`tg:{${workspace}}:`);
    const spec = {
      buckets: refs.map((r) => ({
        ...reservationKeys(keys, r.key),
        slots: r.slots.map((s) => keys.add(`${r.key}:s:${s}`)),
      })),
    };
    const out = await this.#script("tgStatus")(keys.list.length, ...keys.list, JSON.stringify(spec), now);
    return refs.map((_, i) => ({ spend: BigInt(out[2 * i]!), reserved: BigInt(out[2 * i + 1]!) }));
  }

  async run(workspace: string, key: string): Promise<RunStatus | null> {
    const h = await this.redis.hgetall(`tg:{${workspace}}:${key}`);
    if (!h.started && !h.killed) return null;
    const usage: RunUsage = {
      cost_nanousd: BigInt(h.cost ?? 0),
      total_tokens: Number(h.tokens ?? 0),
      llm_calls: Number(h.llm ?? 0),
      tool_calls: Number(h.tools ?? 0),
      retries: Number(h.retries ?? 0),
      span_depth: Number(h.depth ?? 0),
      started_at: Number(h.started ?? 0),
    };
    return { usage, killed: h.killed ? (JSON.parse(h.killed) as KillReason) : null };
  }

  async kill(workspace: string, key: string, reason: KillReason): Promise<void> {
    const k = `tg:{${workspace}}:${key}`;
    await this.redis
      .multi()
      .hset(k, "killed", JSON.stringify(reason))
      .hsetnx(k, "started", reason.at)
      .pexpire(k, 604_800_000)
      .exec();
  }

  async unkill(workspace: string, key: string, now: number): Promise<boolean> {
    const k = `tg:{${workspace}}:${key}`;
    const res = await this.redis
      .multi()
      .hexists(k, "killed")
      .del(k)
      .hset(k, "started", now, "from", now) // from: a call made before is not this run's (SETTLE)
      .pexpire(k, 604_800_000)
      .exec();
    return res?.[0]?.[1] === 1;
  }

  async claim(workspace: string, key: string, until: number, now: number): Promise<boolean> {
    const ttlMs = Math.max(1, until - now);
    return (await this.redis.set(`tg:{${workspace}}:claim:${key}`, "1", "PX", ttlMs, "NX")) === "OK";
  }

  async countFrom(workspace: string, seedId: string, proposed: number | null): Promise<number | null> {
    const key = `tg:{${workspace}}:from:${seedId}`;
    if (proposed !== null) await this.redis.set(key, String(proposed), "NX");
    const v = await this.redis.get(key);
    return v === null ? null : Number(v);
  }

  async seedTotals(
    workspace: string,
    seedId: string,
    totals: readonly SeedTotal[],
    last = false,
  ): Promise<void> {
    const keys = new Keys(`tg:{${workspace}}:`);
    const spec = {
      d: keys.add(`seeded:${seedId}`),
      last,
      s: totals.map(({ bucket, slot, total }) => ({
        k: keys.add(`${bucket.key}:s:${slot}`),
        f: `${bucket.key}:s:${slot}`,
        total: total.toString(),
        ttl: bucket.ttlMs,
      })),
    };
    await this.#script("tgSeed")(keys.list.length, ...keys.list, JSON.stringify(spec));
  }

  seedBucket(): void {}
  seedLevel(): void {}
  spendOf(): Map<string, Map<string, bigint>> {
    return new Map();
  }
  seedRun(): void {}

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    await this.#flush();
    // Leases still held by calls in flight expire in Redis with the reservations' TTL.
    await this.#release(this.#leases.drain().map(leaseHolds));
    await this.#writes.flush();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** A reservation's settle marker (applied once: SETTLE's once), which HOLD_APART reads too. */
const settledKey = (id: string) => `settled:${id}`;
/** An ingested call's charge marker (applied once: SETTLE's once) and its doubt marker (DOUBT). */
const chargedKey = (eventId: string) => `charged:${eventId}`;
const doubtKey = (eventId: string) => `doubt:${eventId}`;
/** How long a call's charge marker is kept, as its request says (chargedUntil); undefined: an hour. */
const chargedMs = (req: { now: number; chargedUntil?: number }) =>
  req.chargedUntil === undefined ? undefined : Math.max(1, req.chargedUntil - req.now);

const leaseHolds = (l: Lease): Holds => ({ workspace: l.workspace, key: l.key, leases: [l.id] });

/** Items grouped by workspace: a script call covers one workspace's keys (one cluster slot). */
function byWorkspace<T extends { workspace: string }>(items: Iterable<T>): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const list = out.get(item.workspace);
    if (list) list.push(item);
    else out.set(item.workspace, [item]);
  }
  return out;
}

/** A run's hold keys (reservations as a bucket keeps them, run-holds.ts) and what a call holds in them. */
function holdSpec(keys: Keys, runKey: string, hold: RunHold | undefined) {
  const { cost, tokens } = runHoldKeys(runKey);
  return {
    cm: keys.add(`${cost}:m`),
    cz: keys.add(`${cost}:z`),
    tm: keys.add(`${tokens}:m`),
    tz: keys.add(`${tokens}:z`),
    ...holdAmounts(hold ?? NO_HOLD),
  };
}

/** A hold's amounts as the scripts take them: digit strings (a bigint has no JSON). */
const holdAmounts = (hold: RunHold) => ({
  cost: String(hold.cost_nanousd),
  tokens: String(hold.total_tokens),
});

/** A call's holds on its run, as reservations to give back (a timed-out ADMIT may have taken them). */
function runHolds(req: AdmitRequest): Holds[] {
  if (!req.run?.hold) return [];
  return holdsOf(req.run.key, req.run.hold)
    .filter(([, amount]) => amount > 0n)
    .map(([key, amount]) => ({
      workspace: req.workspace,
      key,
      leases: [],
      reservation: { id: req.id, amount },
      runHold: true,
    }));
}

/** A bucket's reservation keys: its totals (`m`), its reservations by expiry (`z`) and its leases (`l`). */
function reservationKeys(keys: Keys, bucketKey: string) {
  return { m: keys.add(`${bucketKey}:m`), z: keys.add(`${bucketKey}:z`), l: keys.add(`${bucketKey}:l`) };
}

/** The keys of one bucket a script touches: hash, reservation set, lease hash, slots (current last). */
function bucketKeys(keys: Keys, b: BucketRef) {
  const slots = b.slots.map((s) => keys.add(`${b.key}:s:${s}`));
  return {
    ...reservationKeys(keys, b.key),
    slots,
    cur: slots[slots.length - 1],
  };
}

/** Bucket indices as ADMIT lists them, comma-separated ("": none). */
const indices = (csv: string | undefined): number[] => (csv ? csv.split(",").map(Number) : []);

/** Level changes from a SETTLE/CONSUME reply: groups of (index, from, to, spend) after the first element. */
function levelChanges(r: string[]) {
  const changes = [];
  for (let i = 1; i + 3 < r.length; i += 4)
    changes.push({
      index: Number(r[i]),
      from: Number(r[i + 1]),
      to: Number(r[i + 2]),
      spend: BigInt(r[i + 3]!),
    });
  return changes;
}
