import { randomBytes } from "node:crypto";
import {
  type Api,
  type Budget,
  bucketId,
  bucketValues,
  type CallFacts,
  type CallRecord,
  type Ceilings,
  callWorstCost,
  ceilingsHold,
  currentSlot,
  eachFields,
  type HeldCall,
  type HeldCeiling,
  type KillReason,
  levelOf,
  type PricingEngine,
  type RawBody,
  type RunHold,
  rateRetryAfterMs,
  reserveLessHint,
  runHoldOf,
  STREAM_OPTIONS_REFUSED,
  scopeMatches,
  stateOfLevel,
  tokenHold,
  totalTokens,
  windowSlots,
  worstCaseUsage,
} from "@tollgate/core";
import type { LimitEventRow, LimitsStateStore, PolicyKind, RunUsageRow, SumField } from "../store/types.js";
import { withTimeout } from "../with-timeout.js";
import {
  admissionPlan,
  type ChargedBucket,
  chargeOf,
  heldRates,
  isBucketOf,
  type PlannedRate,
  rateKey,
  throttleKey,
} from "./admission-plan.js";
import { budgetBucket, factsOfRecord, factsOfValues, fixedScope } from "./buckets.js";
import { type Seed, storedSpend, UnstoredSpend } from "./budget-seed.js";
import {
  budgetExceeded,
  budgetThrottled,
  type LimitError,
  limitsUnavailable,
  rateLimited,
  runHeld,
  runKilled,
  unpricedBlocked,
} from "./limit-error.js";
import type { PolicyRegistry, WorkspacePolicies } from "./policies.js";
import { RUN_HISTORY_MS } from "./raw-floor.js";
import { RetryQueue } from "./retry-queue.js";
import { DEFAULT_SHARED_SEED, type SharedSeedOptions, SharedSeeds } from "./shared-seeds.js";
import type { LimitStore, SettleRequest, SettleResult } from "./types.js";
import { inWorkspace } from "./workspace-key.js";

/** What is known about a call before it is sent. */
export interface CallContext {
  workspace: string;
  facts: CallFacts;
  api: Api | null;
  provider: string;
  model: string;
  body: Record<string, unknown> | null;
  raw: RawBody;
  requestId: string;
  /**
   * A retry of its client's call (counted against its run's max_retries): not its first try, nor the
   * gateway's own re-send of a try that an upstream refused for what the gateway added.
   */
  retry: boolean;
  /** Depth of the call in its agent run's span tree (x-tollgate-span-depth; 1 = top level). */
  depth: number;
  /**
   * A pass-through call that starts work the provider may bill later (a batch, an upload), as opposed to
   * reading or cancelling: a killed run may not.
   */
  startsWork?: boolean;
  /**
   * Room the call must leave under its run's cost and token ceilings for an earlier call of the run that
   * waits to go: that call's worst case (RunAdmit.leave). Absent: none.
   */
  leave?: RunHold;
}

/**
 * An admitted call's reservations and counters, settled once its cost is known. A call no limit applied
 * to has one too, with none: a budget that appears while it is in flight counts its cost all the same.
 */
export interface Ticket {
  id: string;
  workspace: string;
  requestId: string;
  buckets: ChargedBucket[];
  /** Tokens-per-minute counters, with the tokens the call holds on each until its settle. */
  tokenRates: { key: string; held: number }[];
  /** The rate counters it was admitted under (its plan's, shared): a call never sent takes its requests back. */
  rates: readonly PlannedRate[];
  /**
   * The throttle counters its admission counted it on (budgets past their limit with throttle_rpm): a call
   * never sent takes those back too. None for one let through with the store down (no admission answered).
   */
  throttles: readonly string[];
  /**
   * The call's agent run, what it holds against the run's ceilings until its settle, whether it was
   * counted as a retry (CallContext.retry), and its depth in the run's span tree (counted once it went out).
   * `counted`: its admission counted its LLM call (and retry) on the run; not one let through with the
   * store down, whose admission may never have run.
   */
  run: {
    key: string;
    runId: string;
    agentType: string | null;
    ceilings: Ceilings;
    hold?: RunHold;
    retry: boolean;
    depth: number;
    counted: boolean;
  } | null;
  /** The policies it was admitted under, and its facts: budgets added since are charged at settle. */
  policies: WorkspacePolicies;
  facts: CallFacts;
  /** When it was admitted: the window slot it is charged to, whichever budget counts it. */
  at: number;
  /** Set by the first settle: a ticket is settled once. */
  settled?: boolean;
  /** The settle in progress (the gateway waits for it before an agent run's reply ends). */
  settling?: Promise<void>;
}

/** A refusal is `inFlight` when only the holds of its agent run's calls in flight stand in its way. */
export type Admission =
  | { ok: true; ticket: Ticket | null }
  | { ok: false; error: LimitError; inFlight?: HeldBack };

/**
 * A call its run's calls in flight turned away: the run's figures it was refused on, what it would hold,
 * and what decides that (its refusal tells how it could hold less).
 */
export interface HeldBack {
  runId: string;
  agentType: string | null;
  held: HeldCeiling;
  hold: RunHold;
  call: HeldCall;
}

/** The refusal of a call its run's calls in flight turn away, told with the figures in `back.held`. */
export const heldBack = (back: HeldBack): Admission => ({
  ok: false,
  error: runHeld(back.runId, back.agentType, back.held, back.hold, back.call),
  inFlight: back,
});

export interface CallOutcome {
  /** The call's actual cost; null when unknown (then the reserved worst case is charged). */
  cost: bigint | null;
  tokens: number;
  toolCalls: number;
  eventId: string | null;
  /** When the call was made (its record's ts_start); absent: it counts as made now. */
  tsStart?: number | null;
  /**
   * Nothing of it went upstream (its client left first): no LLM call, so its run takes back the call (and
   * retry) its admission counted, as a run rebuilt from the store never counts it.
   */
  unsent?: boolean;
  /**
   * Its call goes again as the same try (the gateway's re-send after its upstream refused the
   * stream_options the gateway added): the re-send's admission counts the call, so this one's are taken
   * back, its run's LLM call (as a run rebuilt from the store does not count it: its error_type says) and
   * its requests on rate limits and throttles.
   */
  sentAgain?: boolean;
  /** Its record (eventId) may be made again: its spend counts once per event id (see RECURRING_MS). */
  recurs?: boolean;
}

/**
 * What seeding a budget exactly needs of the recording path (the store's group-commit writer and the
 * gateway's recorder): a pause of the store's commits, and the calls counted but not stored yet.
 */
export interface RecordingView {
  /** Runs `fn` while no commit to the event store is in flight or starts, nor a spool file is stored or set aside. */
  quiet<T>(fn: () => Promise<T>): Promise<T>;
  /** Calls recorded (and counted against limits) not stored yet that wait in memory; a call may repeat. */
  waiting(): Iterable<CallRecord>;
  /** The spool's files, oldest first, and the calls spooled in one (read from disk). */
  spoolFiles(): string[];
  spooled(file: string): CallRecord[];
  /** Which of these calls of the workspace the store holds (one it took without saying so is spooled too). */
  storedIds(ws: string, ids: readonly string[]): Promise<Set<string>>;
}

/** How observed calls count, beyond their spend (which always counts). */
export interface ObserveOptions {
  /** false: not as an agent run's LLM calls (a background response found finished: its submission was). */
  countCalls?: boolean;
  /** false: not against tokens per minute (past calls counted at a restart: their minutes are gone). */
  countRates?: boolean;
  /** Their records may be made again: each one's spend counts once per event id (see RECURRING_MS). */
  recurs?: boolean;
}

export interface GuardOptions {
  /** A reservation not settled within this time (its gateway died) stops counting. */
  reservationTtlMs?: number;
  /** How budgets added while running are seeded on shared counters (Redis). */
  sharedSeed?: SharedSeedOptions;
  log?: (msg: string) => void;
  now?: () => number;
}

/** Which of a workspace's event ids the store holds. */
type StoredIds = (ws: string, ids: readonly string[]) => Promise<Set<string>>;
/** Resolves at the start of the event loop's next turn: whatever the current one queued has run. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const OUTAGE_EVENT_EVERY_MS = 60_000;
/**
 * How long a call whose write failed stays in doubt (see doubt). Its retry comes within minutes (exporters
 * back off to 30 s); past a week a run's counters are gone, and a day's or a week's window with them.
 */
const DOUBT_MS = RUN_HISTORY_MS;
/**
 * How long the count of calls spooled before a start waits for the store to say which of a file's calls
 * it holds: budgeted calls wait for the count, and a store that hangs must not keep them waiting.
 */
const STORED_IDS_WAIT_MS = 5_000;
/**
 * How long a record that may be made again is known as charged (CallOutcome.recurs): a background response
 * found finished is recorded again by a poll that comes once its claim has lapsed and finds the store too far
 * behind to say it is recorded, any time its provider keeps it. Its spend counts against the windows its
 * creation is in: a day's or a week's window is over within a week, and a run's counters are gone by then
 * (a month's or a lifetime window may still count one made again later).
 */
const RECURRING_MS = RUN_HISTORY_MS;

/**
 * Spend controls on the request path: before a call is sent, every budget, rate limit and agent-run ceiling
 * that applies is checked and its worst-case cost reserved, atomically in the LimitStore; after it, the
 * reservation is settled to the actual cost. State transitions and kills become limit events.
 */
export class SpendGuard {
  readonly #ttl: number;
  readonly #log: (msg: string) => void;
  readonly #now: () => number;
  /** When this guard started: a volatile store's charge markers from before went with the last process. */
  readonly #startedAt: number;
  /**
   * When the newest budget added while running was seeded from the store (in memory, #seedLive): a call made
   * before then is in its seed, charged or not (under no limit, it left no marker).
   */
  #newestLiveSeed = Number.NEGATIVE_INFINITY;
  #lastOutageEvent = 0;
  /**
   * Settles and charges that failed: a call's cost must still reach its budgets (the store applies a
   * settle once per reservation id, a charge once per event id).
   */
  readonly #unwritten: RetryQueue;
  #recording: RecordingView = {
    quiet: (fn) => fn(),
    waiting: () => [],
    spoolFiles: () => [],
    spooled: () => [],
    storedIds: () => Promise.resolve(new Set()),
  };
  /** The count of calls an earlier process spooled (countUnstored) while it runs: limits wait for it. */
  #countingUnstored: Promise<void> | null = null;
  /** close() was called: a count under way stops (the next start counts the spool again). */
  #closed = false;
  /** observe() calls in progress, and who waits for there to be none. */
  #observing = 0;
  #observeWaiters: (() => void)[] = [];
  /** Budgets being seeded: the ids of the calls counted meanwhile, by workspace. */
  readonly #taps = new Set<{ ws: string; ids: Set<string> }>();
  /** Seeds of budgets added while running on shared counters; null for volatile ones (#seedLive). */
  readonly #shared: SharedSeeds | null;
  /**
   * The seed of each budget under way (by workspace and id): a budget's seeds run one after the other. Two
   * at once (created, deleted and created again while the first read the store) would each take away the
   * same counters and each add the window's spend: counted twice.
   */
  readonly #seeding = new Map<string, Promise<void>>();
  /**
   * When each budget added while running was last seeded from the store (#seedLive), by workspace and id:
   * a call put in doubt by then is in its seed if the write that failed stored it (observeDuplicates).
   */
  readonly #seededLive = new Map<string, number>();

  constructor(
    readonly store: LimitStore,
    readonly registry: PolicyRegistry,
    readonly events: LimitsStateStore,
    private readonly engine: PricingEngine,
    opts: GuardOptions = {},
  ) {
    // Longer than any call should take (streams included): an unsettled reservation only ends by expiry.
    this.#ttl = opts.reservationTtlMs ?? 60 * 60_000;
    this.#log = opts.log ?? ((m) => console.error(m));
    this.#now = opts.now ?? Date.now;
    this.#startedAt = this.#now();
    this.#unwritten = new RetryQueue(this.#log);
    this.#shared = store.volatile
      ? null
      : new SharedSeeds(store, events, registry, {
          ...(opts.sharedSeed ?? DEFAULT_SHARED_SEED),
          now: this.#now,
          log: this.#log,
        });
    const shared = this.#shared;
    if (shared) registry.onBudgetToSeed((ws, id) => shared.appeared(ws, id));
  }

  /** Whether a call made at `ts` counts live against budget `id` (else a seed counts it: SharedSeeds). */
  #counts(ws: string, id: string, ts: number | null | undefined): boolean {
    return this.#shared === null || this.#shared.counts(ws, id, ts);
  }

  /**
   * Each bucket's charge of a call made at `ts` costing `cost`, its buckets charged to the slots of `at`, at
   * `now`: none where a seed counts it instead.
   */
  #liveCharges(
    ws: string,
    buckets: readonly ChargedBucket[],
    ts: number | null | undefined,
    cost: bigint,
    at: number,
    now: number,
  ) {
    return buckets.map((b) => settleRef(b, this.#counts(ws, b.budget.id, ts) ? cost : 0n, at, now));
  }

  /** Told of each run whose call let its holds go here, or that was killed or unkilled here. */
  readonly #runReleased: ((workspace: string, runId: string) => void)[] = [];

  /**
   * Calls `listener` when a call of an agent run lets its holds go (settled), or the run is killed or
   * unkilled, on this process: calls waiting for room under the run's ceilings need not wait for their poll.
   */
  onRunReleased(listener: (workspace: string, runId: string) => void): void {
    this.#runReleased.push(listener);
  }

  /** Never throws: a listener's fault fails no settle, kill or unkill (a settle tried again would count twice). */
  #released(workspace: string, runId: string): void {
    for (const listener of this.#runReleased)
      try {
        listener(workspace, runId);
      } catch (e) {
        this.#log(`limits: a listener of run releases failed: ${(e as Error).message}`);
      }
  }

  /**
   * Whether the limits backend may no longer know a record that may be made again (CallOutcome.recurs), of
   * a call made at `ts`, as charged (a call is charged no earlier than it is made): charged over
   * RECURRING_MS ago (its marker lapsed), before this process started (a volatile store's markers went with
   * the last one), or before the newest marker the store let go (memory keeps the last 100,000); or made
   * before a budget added since was seeded in memory (its seed counted it, where no limit had charged it:
   * no marker). Made again then, it would count again in the windows that still hold its call (a month's, a
   * lifetime): only the event store can tell that it is recorded already. A call made since needs no such
   * lookup.
   */
  chargeMayBeForgotten(ts: number): boolean {
    return (
      ts <= this.#now() - RECURRING_MS ||
      ts <= this.store.markersKeptAfter ||
      (this.store.volatile && ts < this.#startedAt) ||
      ts <= this.#newestLiveSeed
    );
  }

  /** Lets budgets added while running be seeded exactly (see #seedLive); without it they are seeded as at start. */
  attachRecording(view: RecordingView): void {
    this.#recording = view;
  }

  async admit(ctx: CallContext): Promise<Admission> {
    // Limits govern model calls. A pass-through call (a file, a model list, a poll of a background
    // response) costs nothing and is no LLM call: no budget holds or refuses it, no run counts it.
    if (ctx.api === null) return this.#passThrough(ctx);
    const policies = this.registry.forWorkspace(ctx.workspace);
    const runId = ctx.facts.agent_run_id ?? null;
    if (!policies.budgets.length && !policies.rates.length && !runId)
      return { ok: true, ticket: bareTicket(ctx, policies, this.#now()) };
    const plan = admissionPlan(policies, ctx.facts);
    const { budgets } = plan;
    // A call a budget or its run applies to is not admitted against counters that still lack spooled
    // calls; one only rate limits apply to need not wait: spooled calls do not count against rates.
    if (this.#countingUnstored && (budgets.length || runId)) await this.#countingUnstored;
    const now = this.#now();
    if (!budgets.length && !plan.rates.length && !runId)
      return { ok: true, ticket: bareTicket(ctx, policies, now) };

    const agentType = ctx.facts.agent_type ?? null;
    const ceilings = (agentType && policies.agents.get(agentType)) || {};
    // A run's cost and token ceilings hold the call's worst case while it is in flight, as budgets do.
    const runHolds = runId !== null && ceilingsHold(ceilings);
    const wc =
      budgets.length || plan.tokenRates.length || runHolds
        ? worstCaseUsage(ctx.api, ctx.body, ctx.raw, this.engine.contextWindow(ctx.provider, ctx.model))
        : null;
    const tokens = wc && (plan.tokenRates.length || runHolds) ? tokenHold(wc) : 0;
    // Token counters hold the call's estimate while it is in flight.
    const { rates: rateCharges, tokenRates } = heldRates(plan, plan.tokenRates.length ? tokens : 0);

    let worst = 0n;
    if (wc && (budgets.length || ceilings.cost_nanousd !== undefined)) {
      const cost = callWorstCost(this.engine, ctx, wc, now);
      if (cost.unpriced !== null) {
        const blocking = budgets.find((b) => b.spec.unpriced === "block");
        if (blocking) return { ok: false, error: unpricedBlocked(blocking, ctx.provider, cost.unpriced) };
      }
      worst = cost.total_nanousd;
    }
    const charged = plan.buckets.map((b) => chargeOf(b, now, worst));
    const hold: RunHold | undefined = runHolds ? runHoldOf(ceilings, worst, tokens) : undefined;
    const { retry } = ctx;
    const run = runId
      ? { key: runKey(runId), runId, agentType, ceilings, hold, retry, depth: ctx.depth, counted: true }
      : null;
    const ticket: Ticket = {
      id: nextReservationId(),
      workspace: ctx.workspace,
      requestId: ctx.requestId,
      buckets: charged,
      tokenRates,
      rates: plan.rates,
      throttles: NONE_THROTTLED,
      run,
      policies,
      facts: ctx.facts,
      at: now,
    };

    let result: Awaited<ReturnType<LimitStore["admit"]>>;
    try {
      result = await this.store.admit({
        workspace: ctx.workspace,
        id: ticket.id,
        now,
        expiresAt: now + this.#ttl,
        buckets: charged,
        rates: rateCharges,
        run: run ? { key: run.key, ceilings, depth: ctx.depth, retry, hold, leave: ctx.leave } : null,
      });
    } catch (e) {
      return this.#unavailable(
        ticket,
        budgets,
        rateCharges.map((rc) => rc.spec),
        e as Error,
        now,
      );
    }
    if (result.ok) {
      if (result.throttled) ticket.throttles = result.throttled.map((i) => throttleKey(charged[i]!.key));
      return { ok: true, ticket };
    }
    const r = result.refusal;
    if (r.kind === "run") {
      if (r.newlyKilled) this.#killEvent(ctx.workspace, run!.runId, agentType, r.kill, ctx.requestId);
      return { ok: false, error: runKilled(run!.runId, agentType, r.kill) };
    }
    if (r.kind === "run_held") {
      // Held back only by what its run's calls in flight hold: it holds too, so its worst case was worked out.
      const call = { api: ctx.api, body: ctx.body, worstCase: wc! };
      return heldBack({ runId: run!.runId, agentType, held: r.held, hold: hold!, call });
    }
    if (r.kind === "rate") {
      const rc = rateCharges[r.index]!;
      // Room again once the count, with nothing more counted, leaves space for this call.
      const allowed = rc.cost > 0 ? rc.limit - rc.cost : rc.limit - 1;
      const clearsInMs = rateRetryAfterMs(now, r.previous, r.current, allowed);
      return { ok: false, error: rateLimited(rc, r.count, now, clearsInMs) };
    }
    const b = charged[r.index]!;
    if (r.kind === "throttle")
      return { ok: false, error: budgetThrottled(b.budget, b.values, b.limit, r.spend, r.count, now) };
    return {
      ok: false,
      error: budgetExceeded(
        b.budget,
        b.values,
        b.limit,
        r.spend,
        r.reserved,
        worst,
        windowSlots(b.budget.window, now).resetAt,
        now,
        // A budget applied, so the worst case was worked out.
        reserveLessHint(ctx.api, ctx.body, wc!),
      ),
    };
  }

  /** A killed run may still read (poll, download) and cancel through the gateway, but starts nothing new. */
  async #passThrough(ctx: CallContext): Promise<Admission> {
    const runId = ctx.facts.agent_run_id;
    if (!runId || !ctx.startsWork) return { ok: true, ticket: null };
    let killed: KillReason | null = null;
    try {
      killed = (await this.store.run(ctx.workspace, runKey(runId)))?.killed ?? null;
    } catch {
      // The backend is down: a pass-through call costs nothing by itself, so it goes on.
    }
    return killed
      ? { ok: false, error: runKilled(runId, ctx.facts.agent_type ?? null, killed) }
      : { ok: true, ticket: null };
  }

  /**
   * Turns the reservation into the call's actual cost (0 for a failed call; the reserved worst case when
   * the cost is unknown). Once per ticket; never throws.
   */
  async settle(ticket: Ticket | null, outcome: CallOutcome): Promise<void> {
    if (!ticket || ticket.settled) return;
    ticket.settled = true;
    const now = this.#now();
    if (this.#taps.size && outcome.eventId) this.#tapped(ticket.workspace, outcome.eventId);
    // Started before the settle below awaits anything: a call is counted as it is recorded (see #seedLive).
    const added = this.#addedSince(ticket);
    // A record that may be made again counts in those once per event id too: charged in its settle, under
    // its record's marker (a charge of its own would count it again after a charge of it elsewhere).
    const recurs = outcome.recurs === true && outcome.eventId !== null;
    const extra = added.length && !recurs ? this.#chargeAdded(ticket, added, outcome, now) : null;
    const untaken = outcome.unsent || outcome.sentAgain ? countsTakenBack(ticket) : NONE_TAKEN_BACK;
    if (isBareTicket(ticket) && !untaken.length && !(recurs && added.length)) return void (await extra);
    // Unknown (a reply without usage), as budgets charge its worst case: the tokens a counter held for it
    // (counted 0, a run under a token ceiling alone would never meet it).
    const tokensOr = (held: number) =>
      outcome.cost === null ? Math.max(outcome.tokens, held) : outcome.tokens;
    const tokenCounts: SettleRequest["tokenRates"] = ticket.tokenRates.map((t) => ({
      key: t.key,
      tokens: tokensOr(t.held),
      held: { tokens: t.held, at: ticket.at },
    }));
    const req: SettleRequest = {
      workspace: ticket.workspace,
      id: ticket.id,
      now,
      buckets: ticket.buckets.map((b) => {
        if (this.#counts(ticket.workspace, b.budget.id, outcome.tsStart))
          return settleRef(b, outcome.cost ?? b.reserved, ticket.at, now);
        // A call from before a shared budget's instant is in its seed instead; its reservation stays
        // until the seed has counted it (SharedSeeds.hold).
        this.#shared?.hold(ticket.workspace, b.budget.id, {
          key: b.key,
          id: ticket.id,
          amount: b.reserved,
          eventId: outcome.eventId,
        });
        return { ...settleRef(b, 0n, ticket.at, now), reserved: 0n };
      }),
      tokenRates: untaken.length ? tokenCounts.concat(untaken) : tokenCounts,
      run: ticket.run
        ? {
            key: ticket.run.key,
            ceilings: ticket.run.ceilings,
            // Unknown (a reply without usage), as budgets charge it: the worst case the call held.
            cost: outcome.cost ?? ticket.run.hold?.cost_nanousd ?? 0n,
            tokens: tokensOr(ticket.run.hold?.total_tokens ?? 0),
            toolCalls: outcome.toolCalls,
            // Counted at admission: taken back for a call that never went out, or that goes again.
            llmCalls: (outcome.unsent || outcome.sentAgain) && ticket.run.counted ? -1 : 0,
            retries: outcome.unsent && ticket.run.counted && ticket.run.retry ? -1 : 0,
            // Its depth counts once it went out: a run's deepest call is one its provider had.
            depth: outcome.unsent ? undefined : ticket.run.depth,
            held: ticket.run.hold,
            // A call in flight when its run was killed and unkilled is the old run's, as a rebuild counts it;
            // one never sent takes its call back from the run its admission counted it on.
            startedAt: outcome.tsStart ?? (outcome.unsent ? ticket.at : undefined),
          }
        : null,
    };
    if (recurs) {
      req.eventId = outcome.eventId!;
      req.chargedUntil = now + RECURRING_MS;
      const cost = outcome.cost ?? 0n;
      req.buckets.push(...this.#liveCharges(ticket.workspace, added, outcome.tsStart, cost, ticket.at, now));
    }
    const apply = async () => {
      // Once per event id only as a reservation of its own: a lease's settles, summed per flush, know none
      // (a background stream's hold is still in its lease while it relays).
      if (recurs) await this.store.holdApart(ticket.workspace, ticket.id, ticket.at + this.#ttl);
      const res = await this.store.settle(req);
      if (ticket.run?.hold) this.#released(ticket.workspace, ticket.run.runId);
      this.#afterSettle(
        ticket.workspace,
        recurs ? ticket.buckets.concat(added) : ticket.buckets,
        ticket.run,
        res,
        outcome.eventId,
        ticket.requestId,
        now,
      );
    };
    await this.#unwritten.write(`the settle of ${ticket.requestId}`, apply);
    await extra;
  }

  /**
   * Keeps an admitted call's reservation on its own, to its expiry, until its settle: the call outlives its
   * reply (a background response runs on upstream until a poll finds it finished). Admitted from a Redis
   * lease, it would otherwise hold the lease's room whole all that time. Never throws.
   */
  async holdApart(ticket: Ticket | null): Promise<void> {
    if (!ticket || ticket.settled || !ticket.buckets.length) return;
    await this.store.holdApart(ticket.workspace, ticket.id, ticket.at + this.#ttl);
  }

  /**
   * Buckets of the budgets that appeared while the call was in flight, and apply to it: charged to the slot
   * of its admission, as a reservation of it would have been (a call started before a budget's window, as
   * a background response submitted yesterday, does not count in today's).
   */
  #addedSince(ticket: Ticket): ChargedBucket[] {
    const policies = this.registry.forWorkspace(ticket.workspace);
    if (policies === ticket.policies) return [];
    const had = ticket.buckets.map((b) => b.key);
    return admissionPlan(policies, ticket.facts)
      .buckets.filter((p) => !had.includes(p.key))
      .map((p) => chargeOf(p, ticket.at, 0n));
  }

  /**
   * Charges a call to budgets that appeared while it was in flight (no reservation of it held them); once
   * per ticket, retried as settles are.
   */
  #chargeAdded(ticket: Ticket, added: ChargedBucket[], outcome: CallOutcome, now: number): Promise<void> {
    const cost = outcome.cost ?? 0n;
    const charged = this.#liveCharges(ticket.workspace, added, outcome.tsStart, cost, ticket.at, now);
    const apply = async () => {
      const res = await this.store.charge({
        workspace: ticket.workspace,
        eventId: `added:${ticket.id}`,
        now,
        buckets: charged,
        tokenRates: [],
        run: null,
      });
      this.#afterSettle(ticket.workspace, added, null, res, outcome.eventId, ticket.requestId, now);
    };
    return this.#unwritten.write(`the charge of ${ticket.requestId} to budgets added meanwhile`, apply);
  }

  #tapped(ws: string, eventId: string): void {
    for (const tap of this.#taps) if (tap.ws === ws) tap.ids.add(eventId);
  }

  /**
   * True for the first of every replica to claim `key` in the workspace for `forMs`; false for the others.
   * Never throws: with the backend down every caller is first (budgets are not counted then anyway).
   */
  async claimOnce(ws: string, key: string, forMs: number): Promise<boolean> {
    const now = this.#now();
    try {
      return await this.store.claim(ws, key, now + forMs, now);
    } catch (e) {
      this.#log(`limits: claiming ${key} failed, going on as its first claimant: ${(e as Error).message}`);
      return true;
    }
  }

  /**
   * Adds calls that did not come through the gateway (events API, SDK, OTLP) to every budget, token rate
   * and agent run they fall under: spend is spend, wherever it was recorded. A call a batch ran (`batch`)
   * is past work read back: its spend counts, but not against tokens per minute, nor as a run's LLM call
   * (as runUsage counts a run after a restart). Never throws.
   */
  async observe(records: readonly CallRecord[], opts: ObserveOptions = {}): Promise<void> {
    await this.#counting(async () => {
      for (const rec of records) {
        const charge = this.#chargeOf(rec, opts);
        if (charge) await this.#unwritten.write(`the charge of event ${rec.event_id}`, charge);
      }
    });
  }

  /** Runs `fn` as an observe in progress: a budget's seed takes its instant with none (#seedLive). */
  async #counting(fn: () => Promise<void>): Promise<void> {
    this.#observing++;
    try {
      await fn();
    } finally {
      if (--this.#observing === 0) for (const wake of this.#observeWaiters.splice(0)) wake();
    }
  }

  /**
   * Calls whose write to the event store failed, and may have committed all the same (a timeout after the
   * commit, a store thread that died with the answer on its way): nobody knows, so none is charged. Their
   * client retries: a call its retry stores is observed as any; one answered as a duplicate was stored by
   * the write that failed, and observeDuplicates charges it, once. Never throws.
   */
  async doubt(records: readonly CallRecord[]): Promise<void> {
    const now = this.#now();
    // Only the calls a charge would reach: no charge would take the others out of doubt (a key each, on
    // Redis, for as long as a doubt lasts).
    for (const [ws, counted] of this.#countedByWorkspace(records)) {
      const ids = counted.map((r) => r.event_id);
      await this.#unwritten.write(`the doubt of ${ids.length} calls whose write failed`, () =>
        this.store.doubt(ws, ids, now + DOUBT_MS, now),
      );
    }
  }

  /**
   * Calls the store answered as duplicates. One in doubt (see doubt) was stored by a write that failed:
   * it is charged once, as the store holds it (its retry may say otherwise: priced again meanwhile, built
   * again by its client). The others counted when they were stored. Only those a limit counts are looked
   * for, in one read of the limit store per workspace: a duplicate in no doubt costs nothing more. Never
   * throws.
   */
  async observeDuplicates(records: readonly CallRecord[]): Promise<void> {
    await this.#counting(async () => {
      // One write, in order behind those waiting (a doubt among them): the charges of the calls found in
      // doubt, each applied once however often it is tried.
      for (const [ws, counted] of this.#countedByWorkspace(records))
        await this.#unwritten.write(`the charge of ${counted.length} duplicates that may be in doubt`, () =>
          this.#chargeDoubted(ws, counted),
        );
    });
  }

  async #chargeDoubted(ws: string, duplicates: readonly CallRecord[]): Promise<void> {
    const inDoubt = await this.store.inDoubt(
      ws,
      duplicates.map((r) => r.event_id),
      this.#now(),
    );
    for (const rec of duplicates) {
      const since = inDoubt.get(rec.event_id);
      if (since === undefined) continue;
      const charge = this.#chargeOf(await this.#storedCopy(rec), {}, since);
      if (charge) await charge();
    }
  }

  /** The copy of a call the store holds; the call as given should the store not say. */
  async #storedCopy(rec: CallRecord): Promise<CallRecord> {
    try {
      return (await this.events.findEvent(rec.workspace_id, rec.event_id)) ?? rec;
    } catch (e) {
      this.#log(
        `limits: event ${rec.event_id} is charged as sent, the store did not say: ${(e as Error).message}`,
      );
      return rec;
    }
  }

  /** The records some limit counts (#countsOf), by workspace. */
  #countedByWorkspace(records: readonly CallRecord[]): Map<string, CallRecord[]> {
    const out = new Map<string, CallRecord[]>();
    for (const rec of records) {
      if (!this.#countsOf(rec, {})) continue;
      const list = out.get(rec.workspace_id);
      if (list) list.push(rec);
      else out.set(rec.workspace_id, [rec]);
    }
    return out;
  }

  /**
   * The limits an ingested call counts against: the budgets whose window it is in, token rates, its
   * agent run's policies, and the instant they were worked out at; null when none. A call in doubt since
   * `doubtedAt` does not count against a budget seeded from the store since (#seededLive): if the write
   * that failed stored it, the seed counted it.
   */
  #countsOf(rec: CallRecord, opts: ObserveOptions, doubtedAt?: number) {
    try {
      return this.#limitsOf(rec, opts, doubtedAt);
    } catch (e) {
      // A spooled line a bad byte or a repair left unlike the gateway's that still parses (tags as a map):
      // it counts against nothing here, and the calls counted with it still count.
      this.#log(
        `limits: call ${rec.event_id} counts against no limit, its record is unreadable: ${(e as Error).message}`,
      );
      return null;
    }
  }

  /** #countsOf, of a record as the gateway builds it (it may throw for one unlike that). */
  #limitsOf(rec: CallRecord, opts: ObserveOptions, doubtedAt?: number) {
    const policies = this.registry.forWorkspace(rec.workspace_id);
    // Most ingested records fall under no limit: nothing is built for them.
    if (!policies.budgets.length && !policies.rates.length && !rec.agent_run_id) return null;
    const facts = factsOfRecord(rec);
    const now = this.#now();
    const seededAfter = (id: string) =>
      doubtedAt !== undefined && doubtedAt <= (this.#seededLive.get(inWorkspace(rec.workspace_id, id)) ?? -1);
    // A record from before a budget's current window does not count against it (as after a rebuild).
    const budgets = policies.budgets.filter(
      (b) =>
        scopeMatches(b.scope, facts) &&
        rec.ts_start >= windowSlots(b.window, now).start &&
        !seededAfter(b.id),
    );
    const rates =
      rec.batch || opts.countRates === false
        ? []
        : policies.rates.filter((r) => r.tokens_per_min !== undefined && scopeMatches(r.scope, facts));
    // A run's counters cover its last week, as a rebuild reads them: a call ingested later than that is
    // none of them (it would move the run's start back a week and more, and kill it on wall time). A
    // batch's results count when they are read back, however long ago the batch was made (see startedAt).
    const runId =
      rec.agent_run_id !== null && (rec.batch || rec.ts_start >= now - RUN_HISTORY_MS)
        ? rec.agent_run_id
        : null;
    if (!budgets.length && !rates.length && !runId) return null;
    return { policies, facts, budgets, rates, now, runId };
  }

  /**
   * The charge of an ingested call to the limits it counts against (#countsOf), applied once per event id;
   * null when none does. `doubtedAt`: a doubted charge, of a call in doubt since then.
   */
  #chargeOf(rec: CallRecord, opts: ObserveOptions, doubtedAt?: number): (() => Promise<void>) | null {
    const counts = this.#countsOf(rec, opts, doubtedAt);
    if (!counts) return null;
    const { policies, facts, budgets, rates, now, runId } = counts;
    const buckets = budgets.map((b) => budgetBucket(b, bucketValues(b.scope, facts), facts, now, 0n));
    const tokens = totalTokens(rec);
    const agentType = rec.agent_type;
    const run = runId
      ? {
          key: runKey(runId),
          runId,
          agentType,
          ceilings: (agentType && policies.agents.get(agentType)) || {},
        }
      : null;
    if (this.#taps.size) this.#tapped(rec.workspace_id, rec.event_id);
    const charged = this.#liveCharges(rec.workspace_id, buckets, rec.ts_start, rec.cost_nanousd, now, now);
    return async () => {
      const res = await this.store.charge({
        workspace: rec.workspace_id,
        eventId: rec.event_id,
        doubted: doubtedAt !== undefined,
        now,
        chargedUntil: opts.recurs ? now + RECURRING_MS : undefined,
        buckets: charged,
        tokenRates: rates.map((r) => ({ key: rateKey("t", r, facts), tokens })),
        run: run
          ? {
              key: run.key,
              ceilings: run.ceilings,
              cost: rec.cost_nanousd,
              tokens,
              toolCalls: rec.kind === "tool" ? 1 : 0,
              // A batch's results are past work read back; a hosted tool's model call is its call's; an
              // attempt refused for the stream_options a gateway added is its re-send's (as runUsage counts).
              llmCalls:
                opts.countCalls !== false &&
                !rec.batch &&
                rec.parent_event_id === null &&
                rec.error_type !== STREAM_OPTIONS_REFUSED &&
                (rec.kind === "llm" || rec.kind === "embedding")
                  ? 1
                  : 0,
              // As a run rebuilt from the store counts them (runUsage): every attempt past the first.
              retries: opts.countCalls !== false && rec.parent_event_id === null && rec.attempt > 1 ? 1 : 0,
              // Its run started no later than it did, however late it is ingested; a batch's results say
              // when the batch was made, not a call of the run's own.
              startedAt: rec.batch ? undefined : rec.ts_start,
            }
          : null,
      });
      this.#afterSettle(rec.workspace_id, buckets, run, res, rec.event_id, rec.request_id, now);
    };
  }

  /**
   * Rebuilds a volatile backend's counters from stored events, and `unstored` calls (spooled, not in the
   * store yet; a batch at a time: see countUnstored): a restart does not reset spend. Shared counters need
   * no rebuild: only the seeds of budgets added while running go on (SharedSeeds).
   */
  async rebuild(
    workspaces: readonly string[],
    unstored: Iterable<readonly CallRecord[]> = [],
  ): Promise<void> {
    const all = new Set([...workspaces, ...this.registry.workspaces()]);
    if (this.#shared)
      return this.#shared
        .resume(all)
        .catch((e) => this.#log(`limits: budgets being seeded not resumed: ${(e as Error).message}`));
    const now = this.#now();
    for (const ws of all) {
      for (const b of this.registry.forWorkspace(ws).budgets) await this.#rebuildBudget(ws, b, now);
      // Each run's last kill or unkill of the week, and its last unkill: a run counts from its last unkill
      // on (an unkill starts it over), killed again since or not.
      const last = new Map<string, LimitEventRow>();
      const unkilledAt = new Map<string, number>();
      for (const t of ["run_killed", "run_unkilled"])
        for (const e of await this.events.limitEvents(ws, {
          from: now - RUN_HISTORY_MS,
          type: t,
          limit: 100_000,
        })) {
          const prev = last.get(e.subject);
          if (!prev || prev.ts <= e.ts) last.set(e.subject, e);
          if (t === "run_unkilled" && (unkilledAt.get(e.subject) ?? 0) <= e.ts)
            unkilledAt.set(e.subject, e.ts);
        }
      const seed = (r: RunUsageRow) =>
        this.store.seedRun(ws, runKey(r.agent_run_id), {
          cost_nanousd: r.cost_nanousd,
          total_tokens: r.total_tokens,
          llm_calls: r.llm_calls,
          tool_calls: r.tool_calls,
          retries: r.retries,
          span_depth: 0,
          started_at: r.started_at,
        });
      for (const r of await this.events.runUsage(ws, now - RUN_HISTORY_MS))
        if (!unkilledAt.has(r.agent_run_id)) seed(r);
      for (const [runId, at] of unkilledAt) {
        await this.store.unkill(ws, runKey(runId), at);
        // Started over at its unkill, as it was live: not at its first call since.
        for (const r of await this.events.runUsage(ws, at, runId)) seed({ ...r, started_at: at });
      }
      for (const [runId, e] of last)
        if (e.type === "run_killed")
          await this.store.kill(ws, runKey(runId), e.detail as unknown as KillReason);
    }
    await this.countUnstored(unstored);
  }

  /**
   * Counts calls an earlier process spooled and never stored (a batch at a time) against budgets and agent
   * runs, as a rebuild from the store would once they are stored: not against tokens per minute (their
   * minutes are gone), and not again where the store holds them already. A large spool is counted while the
   * gateway serves: until it is, admissions a limit may apply to, budget seeds and statuses, and run
   * statuses wait for it. Nothing may store these calls meanwhile: one stored before its batch is counted
   * would count nowhere (the rebuild read the store before).
   */
  countUnstored(unstored: Iterable<readonly CallRecord[]>): Promise<void> {
    const counting = (async () => {
      const storedIds = this.#storedIdsUntilSilent();
      for (const calls of unstored) {
        // Shut down meanwhile: the store is closing, and the next start counts these calls.
        if (this.#closed) break;
        await this.observe(await this.#notStored(calls, storedIds), { countRates: false });
      }
    })()
      // Never rejects: admissions wait for it.
      .catch((e) => this.#log(`limits: spooled calls not all counted: ${(e as Error).message}`))
      .finally(() => {
        if (this.#countingUnstored === counting) this.#countingUnstored = null;
      });
    this.#countingUnstored = counting;
    return counting;
  }

  /** Resolves once the calls an earlier process spooled count (countUnstored); at once when they do. */
  unstoredCounted(): Promise<void> {
    return this.#countingUnstored ?? Promise.resolve();
  }

  /**
   * Of spooled calls, those the store does not hold: one it took before its spool file was removed (a crash
   * in between, a batch spooled at shutdown that it committed all the same) counted with the store's spend.
   * Should the store not say, all count: a rebuild is not dropped for a rare double count.
   */
  async #notStored(calls: readonly CallRecord[], storedIds: StoredIds): Promise<CallRecord[]> {
    const out: CallRecord[] = [];
    for (const [ws, counted] of this.#countedByWorkspace(calls)) {
      const ids = counted.map((r) => r.event_id);
      const stored = await storedIds(ws, ids).catch((e) => {
        this.#log(
          `limits: spooled calls count as not stored, the store did not say: ${(e as Error).message}`,
        );
        return new Set<string>();
      });
      for (const rec of counted) if (!stored.has(rec.event_id)) out.push(rec);
    }
    return out;
  }

  /**
   * The store's storedIds for one count, each lookup waiting STORED_IDS_WAIT_MS at most. Once one got no
   * answer, the store is not asked again (every lookup then fails at once): a hung store would hold up
   * budgeted calls for that wait once per spool file (a million spooled calls: 500 files), forever without
   * it. A store that refuses is asked again for the next file: its answer costs no wait.
   */
  #storedIdsUntilSilent(): StoredIds {
    let silent: Error | null = null;
    return async (ws, ids) => {
      if (silent) throw silent;
      let answered = false;
      const lookup = this.events.storedIds(ws, ids).finally(() => {
        answered = true;
      });
      try {
        return await withTimeout(lookup, STORED_IDS_WAIT_MS, "no answer");
      } catch (e) {
        if (!answered) silent = e as Error;
        throw e;
      }
    };
  }

  /**
   * A budget that appears while running (API, file reload) counts what its window already holds, as it
   * would after a restart, and every call of it once while calls keep coming: see #seedLive, and
   * SharedSeeds for counters shared by replicas (Redis). Never throws.
   */
  async budgetAdded(ws: string, id: string): Promise<void> {
    const key = inWorkspace(ws, id);
    // Seeded once the spooled calls count: a seed replaces counters that the count would add to again.
    const seed = () =>
      this.#shared
        ? this.#shared.added(ws, id)
        : this.unstoredCounted().then(() => this.#recording.quiet(() => this.#seedLive(ws, id)));
    const seeded = (this.#seeding.get(key) ?? Promise.resolve())
      .then(seed)
      .catch((e) =>
        this.#log(`limits: budget ${id} starts without its window's earlier spend: ${(e as Error).message}`),
      );
    this.#seeding.set(key, seeded);
    try {
      await seeded;
    } finally {
      if (this.#seeding.get(key) === seeded) this.#seeding.delete(key);
    }
  }

  /**
   * Seeds a budget that calls are counted against already (some of them stored, some not yet). What its
   * counters hold at one instant is replaced by the calls counted before it: those the store holds (no
   * commit runs meanwhile) and those on their way there. Counters left by a removed budget of the same id
   * go with it. Calls counted after that instant stay as counted.
   */
  async #seedLive(ws: string, id: string): Promise<void> {
    const b = this.registry.forWorkspace(ws).budgets.find((x) => x.id === id);
    if (!b) return;
    const now = this.#now();
    const rec = this.#recording;
    const seeds = await storedSpend(this.events, ws, b, now);
    // The instant is taken at the start of a turn with no ingested batch being counted: a batch is counted
    // once stored, so every stored call has been counted by then.
    for (;;) {
      await nextTurn();
      if (!this.#observing) break;
      await new Promise<void>((wake) => this.#observeWaiters.push(wake));
    }
    const before = this.store.spendOf(ws, (key) => isBucketOf(b.id, key));
    this.#seededAt(ws, id, this.#now());
    const tap = { ws, ids: new Set<string>() };
    this.#taps.add(tap);
    // An agent run's call is counted before its reply is sent and recorded a turn later: one more turn
    // lets those counted before the instant be recorded, and the calls counted since are told apart.
    await nextTurn();
    this.#taps.delete(tap);
    // The calls counted before the instant and not stored yet wait in memory or in the spool files there
    // are now, which stay as they are (quiet: none is stored or set aside). The files are read one a turn,
    // and only their calls' sums and ids kept: a large spool neither holds up the event loop nor fills memory.
    const unstored = new UnstoredSpend(ws, b, now, tap.ids);
    const files = rec.spoolFiles();
    await this.#addUnstored(ws, id, unstored, rec.waiting());
    for (const file of files) {
      await nextTurn();
      await this.#addUnstored(ws, id, unstored, rec.spooled(file));
    }
    // The counters are replaced from here on by what they held at the instant: later counts stay on top.
    for (const [key, slots] of before)
      for (const [slot, spend] of slots) this.store.seedBucket(ws, key, slot, -spend);
    this.#seed(ws, [...seeds, ...unstored.seeds()]);
  }

  /**
   * Adds the calls of `group` to a seed's unstored spend, but for those the store took without saying so
   * (an answer lost on the way back). Should the store not say, they count as not stored: a seed is not
   * dropped for a rare double count.
   */
  async #addUnstored(ws: string, id: string, unstored: UnstoredSpend, group: Iterable<CallRecord>) {
    const calls = unstored.take(group);
    if (!calls.length) return;
    const stored = await this.#recording
      .storedIds(
        ws,
        calls.map((u) => u.eventId),
      )
      .catch((e) => {
        this.#log(
          `limits: seeding budget ${id}, the store did not say which calls it holds: ${(e as Error).message}`,
        );
        return new Set<string>();
      });
    for (const u of calls) if (!stored.has(u.eventId)) unstored.add(u);
  }

  /** Notes a budget's seed from the store (#seededLive, #newestLiveSeed); those past any doubt's lifetime go. */
  #seededAt(ws: string, id: string, at: number): void {
    this.#newestLiveSeed = Math.max(this.#newestLiveSeed, at);
    for (const [key, seeded] of this.#seededLive) if (seeded <= at - DOUBT_MS) this.#seededLive.delete(key);
    this.#seededLive.set(inWorkspace(ws, id), at);
  }

  async #rebuildBudget(ws: string, b: Budget, now: number): Promise<void> {
    this.#seed(ws, await storedSpend(this.events, ws, b, now));
  }

  /** Adds spend to the slots it was made in, then sets each bucket's level to its window's total's. */
  #seed(ws: string, seeds: readonly Seed[]): void {
    const buckets = new Map<string, ChargedBucket>();
    for (const { bucket, slot, spend } of seeds) {
      this.store.seedBucket(ws, bucket.key, slot, spend);
      buckets.set(bucket.key, bucket);
    }
    for (const bucket of buckets.values()) this.store.seedLevel(ws, bucket);
  }

  /** Live spend, reservations and state of a budget's buckets (those with spend in the current window). */
  async budgetStatus(ws: string, b: Budget): Promise<BudgetBucketStatus[]> {
    await this.unstoredCounted();
    const now = this.#now();
    const win = windowSlots(b.window, now);
    const by = eachFields(b.scope) as SumField[];
    let buckets: string[][] = [[]];
    if (by.length) {
      const { where } = fixedScope(b);
      const rows = await this.events.sumCost({ workspaceId: ws, from: win.start, where }, by, false);
      buckets = rows.map((r) => r.values.map((v) => v ?? ""));
      for (const o of b.overrides) {
        const values = by.map((f) => o.when[f] ?? "");
        if (!buckets.some((x) => x.join("\u0000") === values.join("\u0000"))) buckets.push(values);
      }
    }
    const refs = buckets.map((values) => budgetBucket(b, values, factsOfValues(by, values), now, 0n));
    const live = await this.store.buckets(ws, refs, now);
    return refs.map((r, i) => {
      const { spend, reserved } = live[i]!;
      return {
        bucket: Object.fromEntries(by.map((f, k) => [f, r.values[k]!])),
        limit: r.limit,
        spend,
        reserved,
        state: stateOfLevel(levelOf(spend, r.steps), r.steps.length),
        window_start: win.start,
        reset_at: win.resetAt,
      };
    });
  }

  /**
   * Tries the settles and charges still waiting once more (stopping at the first the backend refuses),
   * then closes the store, which does the same with its own (lease consumption).
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#shared?.close();
    await this.#unwritten.flush();
    // After the settles that kept them: the reservations held for this replica's seed passes go back.
    await this.#shared?.releaseAll();
    await this.store.close();
  }

  auditOf(ws: string, kind: PolicyKind, id: string) {
    return this.events.policyAudit(ws, kind, id);
  }

  /**
   * Kills a run, one with no call seen yet too (a run stopped before it starts: its first call is refused).
   * `callsSeen` says which it was: a kill of a mistyped id stops nothing that runs.
   */
  async killRun(
    ws: string,
    runId: string,
    by: string,
    reason?: string,
  ): Promise<{ kill: KillReason; callsSeen: boolean }> {
    await this.unstoredCounted(); // its spooled calls are seen first
    const usage = (await this.store.run(ws, runKey(runId)))?.usage;
    const kill: KillReason = {
      ceiling: "manual",
      value: reason ?? "killed by hand",
      limit: "-",
      at: this.#now(),
      by,
    };
    // The event first: a kill that is recorded survives a restart even if the live store missed it.
    await this.events.appendLimitEvents([killRow(ws, runId, null, kill, null)]);
    await this.store.kill(ws, runKey(runId), kill);
    this.#released(ws, runId);
    return { kill, callsSeen: !!usage && usage.llm_calls + usage.tool_calls > 0 };
  }

  async unkillRun(ws: string, runId: string, by: string): Promise<boolean> {
    // After its spooled calls count: a kill they make is undone, not made after the unkill.
    await this.unstoredCounted();
    // Only a killed run starts over: a running one keeps the counters its ceilings are checked against.
    if (!(await this.store.run(ws, runKey(runId)))?.killed) return false;
    // One instant: the run starts over at it, live and rebuilt from the event after a restart.
    const now = this.#now();
    const was = await this.store.unkill(ws, runKey(runId), now);
    this.#released(ws, runId);
    await this.events.appendLimitEvents([
      {
        ...killRow(ws, runId, null, { ceiling: "manual", value: "unkilled", limit: "-", at: now, by }, null),
        type: "run_unkilled",
        from_state: "killed",
        to_state: "running",
      },
    ]);
    return was;
  }

  #afterSettle(
    ws: string,
    buckets: ChargedBucket[],
    run: { runId: string; agentType: string | null } | null,
    res: SettleResult,
    eventId: string | null,
    requestId: string | null,
    now: number,
  ): void {
    const rows: LimitEventRow[] = res.changes.map((c) => {
      const b = buckets[c.index]!;
      return {
        ts: now,
        workspace_id: ws,
        type: "budget_state",
        subject: b.budget.id,
        bucket: bucketId(b.values),
        from_state: stateOfLevel(c.from, b.steps.length),
        to_state: stateOfLevel(c.to, b.steps.length),
        spend_nanousd: c.spend,
        limit_nanousd: b.limit,
        event_id: eventId,
        request_id: requestId,
        detail: { level: c.to, thresholds: b.steps.map(String), window: b.budget.spec.window },
      };
    });
    if (res.killed && run) rows.push(killRow(ws, run.runId, run.agentType, res.killed, requestId, eventId));
    if (rows.length) this.#writeEvents(rows);
  }

  #killEvent(ws: string, runId: string, agentType: string | null, kill: KillReason, requestId: string): void {
    this.#writeEvents([killRow(ws, runId, agentType, kill, requestId)]);
  }

  #writeEvents(rows: LimitEventRow[]): void {
    this.events
      .appendLimitEvents(rows)
      .catch((e) => this.#log(`limits: recording limit events failed: ${(e as Error).message}`));
  }

  #unavailable(
    ticket: Ticket,
    budgets: Budget[],
    rates: { fail_mode: string }[],
    e: Error,
    now: number,
  ): Admission {
    const ws = ticket.workspace;
    if (now - this.#lastOutageEvent > OUTAGE_EVENT_EVERY_MS) {
      this.#lastOutageEvent = now;
      this.#log(`limits: ${this.store.name} backend unreachable: ${e.message}`);
      this.#writeEvents([
        {
          ts: now,
          workspace_id: ws,
          type: "limits_unavailable",
          subject: this.store.name,
          bucket: null,
          from_state: null,
          to_state: null,
          spend_nanousd: null,
          limit_nanousd: null,
          event_id: null,
          request_id: null,
          detail: { error: e.message },
        },
      ]);
    }
    const closed =
      budgets.some((b) => b.spec.fail_mode === "fail_closed") ||
      rates.some((r) => r.fail_mode === "fail_closed");
    // Failing open, the call goes on; its settle charges its cost (and, should the admission have run
    // after all, takes back its reservation: the same id). Its token holds are not taken back, nor its
    // requests, throttle counts (none known: no admission answered) or its run's LLM call should it never
    // be sent: its admission may have run late or not at all (counters have no ids), and a count kept that
    // never was made beats one taken back that never was (a rate limit, a throttle or a run's
    // max_llm_calls passed).
    if (closed) return { ok: false, error: limitsUnavailable(this.store.name, e.message) };
    return {
      ok: true,
      ticket: {
        ...ticket,
        tokenRates: ticket.tokenRates.map((t) => ({ key: t.key, held: 0 })),
        rates: NO_RATES,
        run: ticket.run && { ...ticket.run, counted: false },
      },
    };
  }
}

export interface BudgetBucketStatus {
  bucket: Record<string, string>;
  limit: bigint;
  spend: bigint;
  reserved: bigint;
  state: "ok" | "warning" | "exceeded";
  window_start: number;
  reset_at: number | null;
}

function killRow(
  ws: string,
  runId: string,
  agentType: string | null,
  kill: KillReason,
  requestId: string | null,
  eventId: string | null = null,
): LimitEventRow {
  return {
    ts: kill.at,
    workspace_id: ws,
    type: "run_killed",
    subject: runId,
    bucket: agentType,
    from_state: "running",
    to_state: "killed",
    spend_nanousd: null,
    limit_nanousd: null,
    event_id: eventId,
    request_id: requestId,
    detail: { ...kill },
  };
}

const NO_RATES: readonly PlannedRate[] = [];
const NONE_THROTTLED: readonly string[] = [];
const NONE_TAKEN_BACK: SettleRequest["tokenRates"] = [];

/**
 * What a call never sent (or sent again: CallOutcome.sentAgain) gives back of the per-minute counts its
 * admission made: the request each requests-per-minute counter counted, and the call each throttle
 * counted; 0 in place of its 1 in the minute it was admitted (as a token counter's hold is replaced).
 */
function countsTakenBack(ticket: Ticket): SettleRequest["tokenRates"] {
  const back = (key: string, counted: number) => ({
    key,
    tokens: 0,
    held: { tokens: counted, at: ticket.at },
  });
  const requests = ticket.rates.filter((r) => r.metric === "requests").map((r) => back(r.key, r.cost));
  return ticket.throttles.length ? requests.concat(ticket.throttles.map((key) => back(key, 1))) : requests;
}

/** Whether a ticket holds nothing to settle: no reservation, token counter or run (see bareTicket). */
export const isBareTicket = (ticket: Ticket): boolean =>
  !ticket.buckets.length && !ticket.tokenRates.length && !ticket.run;

/** The ticket of a call no limit applies to: nothing reserved, nothing counted unless a budget appears. */
function bareTicket(ctx: CallContext, policies: WorkspacePolicies, at: number): Ticket {
  return {
    id: nextReservationId(),
    workspace: ctx.workspace,
    requestId: ctx.requestId,
    buckets: [],
    tokenRates: [],
    rates: NO_RATES,
    throttles: NONE_THROTTLED,
    run: null,
    policies,
    facts: ctx.facts,
    at,
  };
}

const runKey = (runId: string) => `r:${runId}`;

/** Unique across gateways (a random prefix per process) and cheap per call (a counter). */
const RESERVATION_PREFIX = randomBytes(8).toString("base64url");
let reservationSeq = 0;
const nextReservationId = () => `${RESERVATION_PREFIX}.${(reservationSeq++).toString(36)}`;

/**
 * Whether the store surely keeps the levels of bucket `b`, charged to the slots of `at`, at `now`: its window
 * still runs, or is the calendar one just before now's, passed so lately that none of it can have lapsed (a
 * slot's spend lives its TTL past its last write, made in the slot or later; its levels as long past the
 * admission): a call sent just before its day ended warns as any. The memory store keeps no window older
 * than the one before (a 23-hour day, DST's, is two days back 47 hours on). A rolling window's levels are
 * its current hours' alone.
 */
function levelsKept(b: ChargedBucket, at: number, now: number): boolean {
  const { window } = b.budget;
  const slot = b.slots[b.slots.length - 1]!;
  const running = windowSlots(window, now);
  // Most settles land in the slot still current: checked first, it spares a 30-day window's 720-slot scan.
  if (running.slots[running.slots.length - 1] === slot || running.slots.includes(slot)) return true;
  if (window.kind === "rolling" || b.ttlMs === null) return false;
  return currentSlot(window, running.start - 1) === slot && now < windowSlots(window, at).start + b.ttlMs;
}

/**
 * What a settle at `now` needs of a bucket charged to the slots of `at` (a small literal: spreading the whole
 * bucket costs per call). Its window's levels are left alone where the store may have lost them: a call
 * settled in a window long over (a background response polled days later) would find them starting over, and
 * fire that window's alerts again; a rolling window's one level is its current hours', not the late call's.
 */
function settleRef(b: ChargedBucket, actual: bigint, at: number, now: number) {
  const ref = { key: b.key, slots: b.slots, steps: b.steps, ttlMs: b.ttlMs, reserved: b.reserved, actual };
  return levelsKept(b, at, now) ? ref : { ...ref, spendOnly: true };
}
