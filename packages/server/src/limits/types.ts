import type { Ceilings, HeldCeiling, HeldTokens, KillReason, RunHold, RunUsage } from "@tollgate/core";

/**
 * One budget bucket a call is charged to: the budget's counters for the call's "*" values. Spend is kept
 * per slot (one per calendar window, one per hour of a rolling window); the current slot is the last.
 */
export interface BucketRef {
  /** Unique within the workspace, e.g. `b:free-tier:u1`. */
  key: string;
  slots: string[];
  /** Ascending amounts at which the state steps up (warn thresholds, then the limit). */
  steps: bigint[];
  /** How long a slot's counter must live; null: forever (lifetime budgets). */
  ttlMs: number | null;
}

export interface BucketCharge extends BucketRef {
  limit: bigint;
  /** Refuse when the reservation does not fit (hard caps); other actions only reserve and count. */
  enforce: boolean;
  /** The worst-case cost reserved now. */
  amount: bigint;
  /** Once spend has reached the limit, admit at most this many calls a minute (action "throttle"). */
  throttleRpm: number | null;
}

/** A sliding-window rate counter checked (and, for requests, counted) at admission. */
export interface RateCharge {
  key: string;
  limit: number;
  /**
   * Added on admission: 1 for a request counter; for a token counter the call's hold (tokenHold), replaced by
   * its tokens at settle (0: none held, its tokens count at settle).
   */
  cost: number;
}

export interface RunAdmit {
  key: string;
  ceilings: Ceilings;
  /** Call depth in the run's span tree (1 = top level): checked here, counted at its settle (once sent). */
  depth: number;
  /** This call is a retry of its client's (CallContext.retry): counted against max_retries. */
  retry: boolean;
  /**
   * What the call holds against the run's cost and token ceilings until its settle (its worst-case cost,
   * its token estimate; 0 where the run has no such ceiling or the call has no price). Absent: nothing.
   */
  hold?: RunHold;
  /**
   * Room to leave under those ceilings for an earlier call of the run that waits to go (a gateway's retry
   * backing off, the first in its line): its worst case. The call is admitted only if that call would still
   * be admitted after it (core's noRoomToLeave: what is spent and held, its hold added, stays under each
   * ceiling), checked with the rest; nothing is held for it. Absent: none.
   */
  leave?: RunHold;
}

export interface AdmitRequest {
  workspace: string;
  /** Reservation id: settles and expiries refer to it. */
  id: string;
  now: number;
  /** A reservation nobody settles (a gateway died) stops counting at this instant. */
  expiresAt: number;
  buckets: BucketCharge[];
  rates: RateCharge[];
  run: RunAdmit | null;
}

export type Refusal =
  | { kind: "budget"; index: number; spend: bigint; reserved: bigint }
  /** previous, current: the two minutes the sliding count is made of (when it clears depends on both). */
  | { kind: "rate"; index: number; count: number; previous: number; current: number }
  | { kind: "throttle"; index: number; count: number; spend: bigint }
  | { kind: "run"; kill: KillReason; newlyKilled: boolean }
  /** The run's calls in flight hold what is left under a ceiling: no kill, room again as they settle. */
  | { kind: "run_held"; held: HeldCeiling };

/**
 * `throttled`: the buckets (indices into AdmitRequest.buckets) whose throttle counted the call, past their
 * limit (throttleKey); absent when none did.
 */
export type AdmitResult = { ok: true; throttled?: number[] } | { ok: false; refusal: Refusal };

export interface SettleRequest {
  workspace: string;
  id: string;
  now: number;
  /**
   * Each bucket charged at admission, with its reservation and the actual cost (0 when the call failed).
   * `spendOnly`: its spend counts, but its window's level is neither read nor set, and no change reported
   * (a window passed whose levels the store may have lost; a rolling window's level is its current hours').
   */
  buckets: (BucketRef & { reserved: bigint; actual: bigint; spendOnly?: boolean })[];
  /**
   * Token counters of tokens-per-minute limits: the call's tokens, in place of what it held (tokenCount).
   * Also a call never sent's requests-per-minute counters and the throttle counters that counted it
   * (throttleKey): 0 in place of the 1 it held.
   */
  tokenRates: { key: string; tokens: number; held?: HeldTokens }[];
  run: {
    key: string;
    ceilings: Ceilings;
    cost: bigint;
    tokens: number;
    toolCalls: number;
    /**
     * LLM calls not counted at admission (ingested records); -1 takes back the one an admission counted
     * for a call that never went out. A count never goes below 0.
     */
    llmCalls: number;
    /** Retries (attempt > 1) not counted at admission (ingested records), as a rebuild counts them; as llmCalls. */
    retries: number;
    /**
     * The call's depth in the run's span tree, raising the run's deepest: a call the gateway sent. Absent:
     * an ingested call (no depth), or one never sent.
     */
    depth?: number;
    /** What the call held at admission (RunAdmit.hold), taken back here. */
    held?: RunHold;
    /**
     * When the call was made (an ingested call's ts_start): a run starts at its earliest call, which may
     * arrive after later ones; one made before an unkill does not count on the run. Absent: now.
     */
    startedAt?: number;
  } | null;
  /**
   * The call's record, where the call may be recorded again (a background response: by a poll that finds
   * it finished while the store cannot say it is recorded): its spend counts once per event id, by this
   * settle or any charge (ChargeRequest.eventId). A repeat only gives back what its call held, which must be
   * its own by then (holdApart), not a lease's. Absent: the settle applies once per reservation id alone.
   */
  eventId?: string;
  /** Until when the event id is known as charged (this settle's, a charge's); absent: an hour. */
  chargedUntil?: number;
}

/** Spend that needed no reservation: a call ingested through the events API or the SDK. */
export interface ChargeRequest extends Omit<SettleRequest, "id"> {
  /** The call's record: a charge applies once per event id, and takes the call out of doubt. */
  eventId: string;
  /**
   * Applies only to a call in doubt (LimitStore.doubt): one the store answered as a duplicate, which the
   * write that failed before may have stored.
   */
  doubted?: boolean;
}

/** A bucket's state step seen at settle (the state machine's transitions are recorded from these). */
export interface LevelChange {
  index: number;
  from: number;
  to: number;
  spend: bigint;
}

export interface SettleResult {
  changes: LevelChange[];
  /** The run was killed by this settle (a ceiling crossed): recorded once, here. */
  killed: KillReason | null;
}

/** A call's reservation in one bucket, as admitted: its bucket key, reservation id and amount. */
export interface HeldReservation {
  key: string;
  id: string;
  amount: bigint;
}

/** The store's spend in one slot of a bucket, as seeded. */
export interface SeedTotal {
  bucket: BucketRef;
  slot: string;
  total: bigint;
}

export interface BucketStatus {
  spend: bigint;
  reserved: bigint;
}

export interface RunStatus {
  usage: RunUsage;
  killed: KillReason | null;
}

/**
 * Atomic limit counters (DESIGN.md "LimitStore"): admission checks every applicable budget, rate limit
 * and run ceiling and reserves/counts all of them, or none; settle turns a reservation into spend.
 * Implementations: in-memory (embedded default, rebuilt from the event store at start) and Redis.
 */
export interface LimitStore {
  readonly name: "memory" | "redis";
  /** True when counters start empty and must be rebuilt from stored events (memory). */
  readonly volatile: boolean;
  /**
   * Every charge marker (by event id: a charge's, a settle's naming its record) set after this instant is
   * kept until it lapses; one set before may be gone: memory keeps those of the last 100,000 charges (this
   * is when the newest it let go was set). -Infinity: none let go (Redis keeps each until it lapses). A
   * volatile store's go with it at a restart, too.
   */
  readonly markersKeptAfter: number;
  admit(req: AdmitRequest): Promise<AdmitResult>;
  /**
   * Applies once per reservation id: a settle that failed is retried, and may have run (its reply lost).
   * An id with no reservation (its admission failed) is charged all the same. One naming its record
   * (eventId) adds spend once per event id too.
   */
  settle(req: SettleRequest): Promise<SettleResult>;
  /**
   * Holds a call's reservation on its own until `expiresAt`: it outlives the call's reply (a background
   * response runs on upstream until a poll finds it finished), so it must not keep room it shares with
   * other calls (a Redis lease) reserved that long. Its settle is unchanged. Never throws (retried until the
   * backend answers).
   */
  holdApart(workspace: string, id: string, expiresAt: number): Promise<void>;
  /** Adds spend that needed no reservation. Applies once per event id, as a settle once per reservation id. */
  charge(req: ChargeRequest): Promise<SettleResult>;
  /**
   * Puts calls in doubt until `until`: their write to the event store failed, and may have committed all the
   * same (its answer lost), so nobody charged them. A doubted charge of one applies once; any charge of one
   * takes it out of doubt. A call charged already (its duplicate is the write's that counted it; within the
   * hour a charge is known by its event id: in memory, of the last 100,000) is not put in it.
   */
  doubt(workspace: string, eventIds: readonly string[], until: number, now: number): Promise<void>;
  /**
   * Which of these calls are in doubt, each with the instant it was put in it; changes nothing. A call not
   * in doubt when asked would find none at a doubted charge made then: its charge is not needed.
   */
  inDoubt(workspace: string, eventIds: readonly string[], now: number): Promise<Map<string, number>>;
  buckets(workspace: string, refs: BucketRef[], now: number): Promise<BucketStatus[]>;
  run(workspace: string, key: string): Promise<RunStatus | null>;
  kill(workspace: string, key: string, reason: KillReason): Promise<void>;
  /**
   * Lifts a kill; the run starts over with fresh counters (else its ceilings would kill it again at once),
   * started at `now`: a call made before, ingested since, does not count on it (a rebuild counts from here).
   */
  unkill(workspace: string, key: string, now: number): Promise<boolean>;
  /**
   * True for the first caller of `key` until `until` (ms since epoch), false for every other: one replica
   * of many does a thing once (charges a background response found finished by several polls).
   */
  claim(workspace: string, key: string, until: number, now: number): Promise<boolean>;
  /**
   * The instant from which calls count live against a budget added while running, on shared counters (the
   * calls before it are seeded from the event store instead), per seed of a budget (`seedId`: SharedSeeds'
   * seedOf). The first `proposed` is kept for good; null only reads it (null back: none was set).
   */
  countFrom(workspace: string, seedId: string, proposed: number | null): Promise<number | null>;
  /**
   * Raises the seeded spend of each bucket slot to `total` (the store's spend of calls before countFrom,
   * read again as more of them are stored): only the growth since the last seed is added, so a seed that
   * is read twice, or by two replicas, counts once. `last` closes the seed: later calls change nothing.
   */
  seedTotals(workspace: string, seedId: string, totals: readonly SeedTotal[], last?: boolean): Promise<void>;
  /**
   * Takes back reservations a settle kept (`id` with `amount` in bucket `key`): calls whose cost a seed
   * counts, held until it has. Repeating it changes nothing.
   */
  releaseHolds(workspace: string, holds: readonly HeldReservation[]): Promise<void>;
  /** Seeds a bucket's spend in one slot (memory, rebuilt from the store); additive, and may take away. */
  seedBucket(workspace: string, key: string, slot: string, spend: bigint): void;
  /** Sets the level of the bucket's window to the one its spend reaches now (no state event). */
  seedLevel(workspace: string, ref: BucketRef): void;
  /** The spend counted so far, by slot, of every bucket whose key `owned` says (a budget about to be seeded). */
  spendOf(workspace: string, owned: (key: string) => boolean): Map<string, Map<string, bigint>>;
  seedRun(workspace: string, key: string, usage: RunUsage): void;
  close(): Promise<void>;
}
