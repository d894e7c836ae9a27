import {
  admitsNext,
  ceilingsHold,
  crossedCeiling,
  emptyRunUsage,
  heldCeiling,
  type KillReason,
  levelOf,
  minuteOf,
  NO_HOLD,
  noRoomToLeave,
  type RunUsage,
  slidingCount,
  tokenCount,
} from "@tollgate/core";
import { throttleKey } from "./admission-plan.js";
import { LapsingKeys } from "./lapsing-keys.js";
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
import { inWorkspace } from "./workspace-key.js";

interface Bucket {
  spend: Map<string, bigint>;
  /** Level reached, per window (the slot of a calendar window; "r" for a rolling one). */
  levels: Map<string, number>;
  reserved: bigint;
  reservations: Map<string, { amount: bigint; expiresAt: number }>;
  /**
   * When it may go (ms since the epoch): as Redis lets a bucket's keys expire, its last write plus its
   * slots' lifetime, and never before its reservations expire; Infinity for a lifetime window's.
   */
  keptUntil: number;
}

interface Rate {
  minute: number;
  previous: number;
  current: number;
}

interface Run {
  usage: RunUsage;
  killed: KillReason | null;
  lastSeen: number;
  /** When an unkill started the run over (0: never): a call made before counts on the old run, not this. */
  restartedAt: number;
}

const PRUNE_EVERY_MS = 60_000;
/**
 * Calls in doubt kept at most (the oldest go first): each is a failed write's call that its retry has not
 * settled yet, so only a long store outage with clients giving up comes near it (~12 MB).
 */
const MAX_DOUBTED = 100_000;
/**
 * A charge applies once per event id for this long (unless it says until when: chargedUntil), as Redis
 * keeps its marker, and of this many calls charged last at most: a call sent again (its answer lost) in a
 * write that fails is known as charged then, and not put in doubt (~12 MB).
 */
const CHARGED_MS = 3_600_000;
const MAX_CHARGED = 100_000;
/** A run nobody called for this long is forgotten (a restart forgets it too: runs rebuild from 7 days). */
const RUN_IDLE_MS = 7 * 86_400_000;
/** A bucket outlives its last write by at least this, whatever its slots' lifetime (Redis's KEEP_MS). */
const BUCKET_KEEP_MS = 2 * 86_400_000;

/** The window a level belongs to: calendar windows have one slot, rolling ones many. */
export const levelWindow = (slots: readonly string[]) => {
  const current = slots[slots.length - 1]!;
  return current.startsWith("h") ? "r" : current;
};

/**
 * The embedded default. One event loop and no awaits inside an operation make every admit/settle atomic
 * (nothing interleaves), so concurrent calls can never both take the last dollar of a cap.
 */
export class MemoryLimitStore implements LimitStore {
  readonly name = "memory";
  readonly volatile = true;
  /** Buckets by workspace, then key (no key strings built per lookup). */
  readonly #buckets = new Map<string, Map<string, Bucket>>();
  readonly #rates = new Map<string, Rate>();
  readonly #runs = new Map<string, Run>();
  /** Claims by workspace and key, with when each ends. */
  readonly #claims = new Map<string, number>();
  /** countFrom instants, and the totals seedTotals has added, by workspace, seed (bucket, slot). */
  readonly #countFrom = new Map<string, number>();
  readonly #seeded = new Map<string, bigint>();
  /** Seeds a last pass closed, by workspace and seed id. */
  readonly #seedClosed = new Set<string>();
  /** Calls in doubt (doubt), by workspace and event id. */
  readonly #doubted = new LapsingKeys(MAX_DOUBTED);
  /** Calls charged within the hour (a charge applies once), by workspace and event id. */
  readonly #charged = new LapsingKeys(MAX_CHARGED);
  #nextPrune = 0;

  /** The charge markers kept are those of the last MAX_CHARGED charges: older ones may be gone. */
  get markersKeptAfter(): number {
    return this.#charged.keptAfter;
  }

  admit(req: AdmitRequest): Promise<AdmitResult> {
    return Promise.resolve(this.#admit(req));
  }

  #admit(req: AdmitRequest): AdmitResult {
    const { now } = req;
    if (now >= this.#nextPrune) this.#prune(now);
    let run: Run | null = null;
    if (req.run) {
      run = this.#run(req.workspace, req.run.key, now);
      if (run.killed) return { ok: false, refusal: { kind: "run", kill: run.killed, newlyKilled: false } };
      const next = req.run.retry ? { ...run.usage, retries: run.usage.retries + 1 } : run.usage;
      const kill = admitsNext(next, req.run.ceilings, "llm", req.run.depth, now);
      if (kill) {
        run.killed = kill;
        return { ok: false, refusal: { kind: "run", kill, newlyKilled: true } };
      }
      if (ceilingsHold(req.run.ceilings)) {
        const keys = runHoldKeys(req.run.key);
        const held = {
          cost_nanousd: this.#held(req.workspace, keys.cost, now),
          total_tokens: Number(this.#held(req.workspace, keys.tokens, now)),
        };
        const { ceilings, hold, leave } = req.run;
        const full =
          heldCeiling(run.usage, held, ceilings) ??
          (leave ? noRoomToLeave(run.usage, held, hold ?? NO_HOLD, leave, ceilings) : null);
        if (full) return { ok: false, refusal: { kind: "run_held", held: full } };
      }
    }
    const rates = req.rates.map((r) => this.#rate(req.workspace, r.key, now));
    for (let i = 0; i < req.rates.length; i++) {
      const r = req.rates[i]!;
      const count = slidingCount(rates[i]!.previous, rates[i]!.current, now);
      if (r.cost > 0 ? count + r.cost > r.limit : count >= r.limit)
        return {
          ok: false,
          refusal: {
            kind: "rate",
            index: i,
            count,
            previous: rates[i]!.previous,
            current: rates[i]!.current,
          },
        };
    }
    const buckets = req.buckets.map((b) => this.#bucket(req.workspace, b, now));
    const throttles: [index: number, rate: Rate][] = [];
    for (let i = 0; i < req.buckets.length; i++) {
      const b = req.buckets[i]!;
      const state = buckets[i]!;
      const spend = sumSlots(state, b.slots);
      if (b.enforce && spend + state.reserved + b.amount > b.limit)
        return { ok: false, refusal: { kind: "budget", index: i, spend, reserved: state.reserved } };
      if (b.throttleRpm !== null && spend >= b.limit) {
        const t = this.#rate(req.workspace, throttleKey(b.key), now);
        const count = slidingCount(t.previous, t.current, now);
        if (count + 1 > b.throttleRpm)
          return { ok: false, refusal: { kind: "throttle", index: i, count, spend } };
        throttles.push([i, t]);
      }
    }
    for (const [, t] of throttles) t.current++;
    // Everything fits: count and reserve all of it.
    for (let i = 0; i < req.rates.length; i++) rates[i]!.current += req.rates[i]!.cost;
    for (let i = 0; i < req.buckets.length; i++) {
      reserve(buckets[i]!, req.id, req.buckets[i]!.amount, req.expiresAt);
      keep(buckets[i]!, req.buckets[i]!.ttlMs, now);
    }
    if (run && req.run) {
      if (req.run.hold)
        for (const [key, amount] of holdsOf(req.run.key, req.run.hold))
          if (amount > 0n) reserve(this.#state(req.workspace, key), req.id, amount, req.expiresAt);
      run.usage.llm_calls++;
      if (req.run.retry) run.usage.retries++;
    }
    return throttles.length ? { ok: true, throttled: throttles.map(([i]) => i) } : { ok: true };
  }

  settle(req: SettleRequest): Promise<SettleResult> {
    const again =
      req.eventId !== undefined && !this.#chargedFirst(inWorkspace(req.workspace, req.eventId), req);
    return Promise.resolve(this.#settle(req.workspace, req.id, req, again));
  }

  /** Each call's reservations are its own already. */
  holdApart(): Promise<void> {
    return Promise.resolve();
  }

  charge(req: ChargeRequest): Promise<SettleResult> {
    const k = inWorkspace(req.workspace, req.eventId);
    const inDoubt = this.#doubted.size > 0 && this.#doubted.take(k, req.now);
    if ((req.doubted && !inDoubt) || !this.#chargedFirst(k, req))
      return Promise.resolve({ changes: [], killed: null });
    return Promise.resolve(this.#settle(req.workspace, null, req, false));
  }

  /** Marks call `k` charged (until chargedUntil; default CHARGED_MS): false when it was charged already. */
  #chargedFirst(k: string, req: { now: number; chargedUntil?: number }): boolean {
    if (this.#charged.has(k, req.now)) return false;
    this.#charged.add(k, req.chargedUntil ?? req.now + CHARGED_MS, req.now);
    return true;
  }

  doubt(workspace: string, eventIds: readonly string[], until: number, now: number): Promise<void> {
    for (const id of eventIds) {
      const k = inWorkspace(workspace, id);
      // Charged already: its duplicate is the earlier write's, that counted it (as on Redis).
      if (!this.#charged.has(k, now)) this.#doubted.add(k, until, now);
    }
    return Promise.resolve();
  }

  inDoubt(workspace: string, eventIds: readonly string[], now: number): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (this.#doubted.size)
      for (const id of eventIds) {
        const since = this.#doubted.since(inWorkspace(workspace, id), now);
        if (since !== undefined) out.set(id, since);
      }
    return Promise.resolve(out);
  }

  /** `again`: its record was charged already (SettleRequest.eventId): it only gives back what it held. */
  #settle(
    workspace: string,
    id: string | null,
    req: Omit<SettleRequest, "id">,
    again: boolean,
  ): SettleResult {
    const { now } = req;
    const changes: LevelChange[] = [];
    for (let index = 0; index < req.buckets.length; index++) {
      const b = req.buckets[index]!;
      // No pruning here: a call admitted before its window rolled over settles into the slot it was
      // admitted in (as its ts_start places it), and must not drop the newer slot.
      const state = this.#state(workspace, b.key);
      // Settled with another amount (0: kept until a seed counts the call, SharedSeeds.hold), it stays.
      if (id !== null) unreserve(state, id, b.reserved);
      if (again) continue;
      const slot = b.slots[b.slots.length - 1]!;
      state.spend.set(slot, (state.spend.get(slot) ?? 0n) + b.actual);
      keep(state, b.ttlMs, now);
      if (b.spendOnly) continue;
      const spend = sumSlots(state, b.slots);
      const window = levelWindow(b.slots);
      const from = state.levels.get(window) ?? 0;
      const to = levelOf(spend, b.steps);
      if (to !== from) {
        state.levels.set(window, to);
        changes.push({ index, from, to, spend });
      }
    }
    for (const t of req.tokenRates) this.#countTokens(workspace, again ? { ...t, tokens: 0 } : t, now);
    let killed: KillReason | null = null;
    if (req.run) {
      const run = this.#run(workspace, req.run.key, now);
      if (id !== null && req.run.held)
        for (const [key, amount] of holdsOf(req.run.key, req.run.held))
          this.#unhold(workspace, key, id, amount);
      const at = req.run.startedAt;
      // A call made before the unkill that started its run over was the old run's: the run counts from
      // its unkill on (as a rebuild counts it).
      if (!again && (at === undefined || at >= run.restartedAt)) {
        run.usage.cost_nanousd += req.run.cost;
        run.usage.total_tokens += req.run.tokens;
        run.usage.tool_calls += req.run.toolCalls;
        run.usage.llm_calls = Math.max(0, run.usage.llm_calls + req.run.llmCalls);
        run.usage.retries = Math.max(0, run.usage.retries + req.run.retries);
        if (req.run.depth !== undefined) run.usage.span_depth = Math.max(run.usage.span_depth, req.run.depth);
        // A run starts at its earliest call, one ingested after later ones included.
        if (at !== undefined) run.usage.started_at = Math.min(run.usage.started_at, at);
        if (!run.killed) {
          killed = crossedCeiling(run.usage, req.run.ceilings, now);
          run.killed = killed;
        }
      }
    }
    return { changes, killed };
  }

  buckets(workspace: string, refs: BucketRef[], now: number): Promise<BucketStatus[]> {
    return Promise.resolve(
      refs.map((r) => {
        const state = this.#bucket(workspace, r, now);
        return { spend: sumSlots(state, r.slots), reserved: state.reserved };
      }),
    );
  }

  run(workspace: string, key: string): Promise<RunStatus | null> {
    const run = this.#runs.get(inWorkspace(workspace, key));
    return Promise.resolve(run ? { usage: { ...run.usage }, killed: run.killed } : null);
  }

  kill(workspace: string, key: string, reason: KillReason): Promise<void> {
    this.#run(workspace, key, reason.at).killed = reason;
    return Promise.resolve();
  }

  unkill(workspace: string, key: string, now: number): Promise<boolean> {
    const k = inWorkspace(workspace, key);
    const was = !!this.#runs.get(k)?.killed;
    this.#runs.set(k, { usage: emptyRunUsage(now), killed: null, lastSeen: now, restartedAt: now });
    return Promise.resolve(was);
  }

  claim(workspace: string, key: string, until: number, now: number): Promise<boolean> {
    if (now >= this.#nextPrune) this.#prune(now);
    const k = inWorkspace(workspace, key);
    const held = this.#claims.get(k);
    if (held !== undefined && held > now) return Promise.resolve(false);
    this.#claims.set(k, until);
    return Promise.resolve(true);
  }

  countFrom(workspace: string, seedId: string, proposed: number | null): Promise<number | null> {
    const k = inWorkspace(workspace, seedId);
    if (proposed !== null && !this.#countFrom.has(k)) this.#countFrom.set(k, proposed);
    return Promise.resolve(this.#countFrom.get(k) ?? null);
  }

  seedTotals(workspace: string, seedId: string, totals: readonly SeedTotal[], last = false): Promise<void> {
    const budget = inWorkspace(workspace, seedId);
    if (this.#seedClosed.has(budget)) return Promise.resolve();
    if (last) this.#seedClosed.add(budget);
    for (const { bucket, slot, total } of totals) {
      const k = `${budget}\u0000${bucket.key}\u0000${slot}`;
      const done = this.#seeded.get(k) ?? 0n;
      if (total <= done) continue;
      this.#seeded.set(k, total);
      this.seedBucket(workspace, bucket.key, slot, total - done);
      keep(this.#state(workspace, bucket.key), bucket.ttlMs, Date.now());
    }
    return Promise.resolve();
  }

  releaseHolds(workspace: string, holds: readonly HeldReservation[]): Promise<void> {
    for (const { key, id, amount } of holds) unreserve(this.#state(workspace, key), id, amount);
    return Promise.resolve();
  }

  seedBucket(workspace: string, key: string, slot: string, spend: bigint): void {
    const state = this.#state(workspace, key);
    const sum = (state.spend.get(slot) ?? 0n) + spend;
    if (sum === 0n) state.spend.delete(slot);
    else state.spend.set(slot, sum);
  }

  seedLevel(workspace: string, ref: BucketRef): void {
    const state = this.#state(workspace, ref.key);
    state.levels.set(levelWindow(ref.slots), levelOf(sumSlots(state, ref.slots), ref.steps));
    keep(state, ref.ttlMs, Date.now()); // seeded at a start, or as a budget appears: from now
  }

  spendOf(workspace: string, owned: (key: string) => boolean): Map<string, Map<string, bigint>> {
    const out = new Map<string, Map<string, bigint>>();
    for (const [key, b] of this.#buckets.get(workspace) ?? [])
      if (owned(key) && b.spend.size) out.set(key, new Map(b.spend));
    return out;
  }

  seedRun(workspace: string, key: string, usage: RunUsage): void {
    const k = inWorkspace(workspace, key);
    const restartedAt = this.#runs.get(k)?.restartedAt ?? 0; // seeded after its unkill, at a rebuild
    this.#runs.set(k, { usage: { ...usage }, killed: null, lastSeen: Date.now(), restartedAt });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Drops rate counters older than the sliding minute, buckets past their lifetime (the windows of a
   * customer or user who has not called since), runs idle for a week and ended claims: memory stays
   * bounded by recent traffic, not by every key ever seen.
   */
  #prune(now: number): void {
    this.#nextPrune = now + PRUNE_EVERY_MS;
    const minute = minuteOf(now);
    for (const [k, r] of this.#rates) if (r.minute < minute - 1) this.#rates.delete(k);
    for (const [ws, buckets] of this.#buckets) {
      for (const [k, b] of buckets) if (b.keptUntil <= now) buckets.delete(k);
      if (!buckets.size) this.#buckets.delete(ws);
    }
    for (const [k, run] of this.#runs) if (run.lastSeen < now - RUN_IDLE_MS) this.#runs.delete(k);
    for (const [k, until] of this.#claims) if (until <= now) this.#claims.delete(k);
  }

  #state(workspace: string, key: string): Bucket {
    let ws = this.#buckets.get(workspace);
    if (!ws) {
      ws = new Map();
      this.#buckets.set(workspace, ws);
    }
    let b = ws.get(key);
    if (!b) {
      b = { spend: new Map(), levels: new Map(), reserved: 0n, reservations: new Map(), keptUntil: 0 };
      ws.set(key, b);
    }
    return b;
  }

  /**
   * The bucket, with slots that left its window and reservations past their expiry dropped. A calendar
   * window keeps the window before it too (its spend and level): calls admitted before the turn still
   * settle into it, and would otherwise find its spend gone (a step back to ok, or a second warning).
   */
  #bucket(workspace: string, ref: BucketRef, now: number): Bucket {
    const b = this.#state(workspace, ref.key);
    const current = ref.slots[ref.slots.length - 1]!;
    const calendar = ref.slots.length === 1 && /^[dwm]/.test(current);
    if (calendar) {
      if (b.spend.size > 2) keepLatest(b.spend, current);
      if (b.levels.size > 2) keepLatest(b.levels, current);
    } else {
      if (b.spend.size > ref.slots.length || (b.spend.size && !b.spend.has(current)))
        for (const slot of b.spend.keys()) if (!ref.slots.includes(slot)) b.spend.delete(slot);
      if (b.levels.size > 1)
        for (const w of b.levels.keys()) if (w !== levelWindow(ref.slots)) b.levels.delete(w);
    }
    return dropExpired(b, now);
  }

  /** What a run's calls in flight hold under `key`, those past their expiry dropped. */
  #held(workspace: string, key: string, now: number): bigint {
    const b = this.#buckets.get(workspace)?.get(key);
    return b ? dropExpired(b, now).reserved : 0n;
  }

  /** Takes a call's hold on a run back; a run holding nothing keeps no state for it (runs are many). */
  #unhold(workspace: string, key: string, id: string, amount: bigint): void {
    const ws = this.#buckets.get(workspace);
    const b = ws?.get(key);
    if (!b) return;
    unreserve(b, id, amount);
    if (!b.reservations.size) ws!.delete(key);
  }

  #rate(workspace: string, key: string, now: number): Rate {
    const k = inWorkspace(workspace, key);
    const minute = minuteOf(now);
    let r = this.#rates.get(k);
    if (!r) {
      r = { minute, previous: 0, current: 0 };
      this.#rates.set(k, r);
    } else if (r.minute !== minute) {
      r.previous = r.minute === minute - 1 ? r.current : 0;
      r.current = 0;
      r.minute = minute;
    }
    return r;
  }

  /** A call's tokens in place of its hold (core's tokenCount), never below 0. */
  #countTokens(workspace: string, t: SettleRequest["tokenRates"][number], now: number): void {
    const { minute, add } = tokenCount(t.tokens, t.held, now);
    const r = this.#rate(workspace, t.key, now);
    if (minute === r.minute) r.current = Math.max(0, r.current + add);
    else if (minute === r.minute - 1) r.previous = Math.max(0, r.previous + add);
  }

  #run(workspace: string, key: string, now: number): Run {
    const k = inWorkspace(workspace, key);
    let run = this.#runs.get(k);
    if (!run) {
      run = { usage: emptyRunUsage(now), killed: null, lastSeen: now, restartedAt: 0 };
      this.#runs.set(k, run);
    }
    run.lastSeen = Math.max(run.lastSeen, now);
    return run;
  }
}

/** Keeps `current` and the latest key before it (slot keys of one kind sort by time), drops the rest. */
function keepLatest(m: Map<string, unknown>, current: string): void {
  let previous: string | null = null;
  for (const k of m.keys()) if (k < current && (previous === null || k > previous)) previous = k;
  for (const k of m.keys()) if (k !== current && k !== previous) m.delete(k);
}

function reserve(b: Bucket, id: string, amount: bigint, expiresAt: number): void {
  b.reserved += amount;
  b.reservations.set(id, { amount, expiresAt });
  b.keptUntil = Math.max(b.keptUntil, expiresAt);
}

/** A write to a bucket whose slots live `ttlMs` (null: forever) keeps it that long from `now`, 2 days at least. */
function keep(b: Bucket, ttlMs: number | null, now: number): void {
  b.keptUntil = Math.max(b.keptUntil, ttlMs === null ? Infinity : now + Math.max(ttlMs, BUCKET_KEEP_MS));
}

/** Reservations share one TTL, so insertion order is expiry order: stops at the first live one. */
function dropExpired(b: Bucket, now: number): Bucket {
  for (const [id, r] of b.reservations) {
    if (r.expiresAt > now) break;
    b.reservations.delete(id);
    b.reserved -= r.amount;
  }
  return b;
}

/**
 * Takes reservation `id` back from a bucket if it is there as `amount` (as Redis takes back the member
 * "<id>:<amount>"): at most once.
 */
function unreserve(b: Bucket, id: string, amount: bigint): void {
  const held = b.reservations.get(id);
  if (!held || held.amount !== amount) return;
  b.reservations.delete(id);
  b.reserved -= held.amount;
}

function sumSlots(b: Bucket, slots: readonly string[]): bigint {
  let sum = 0n;
  for (const s of slots) sum += b.spend.get(s) ?? 0n;
  return sum;
}
