import type { AsyncLocalStorage } from "node:async_hooks";
import {
  type AgentCeilingsInput,
  AgentCeilingsSchema,
  type Api,
  admitsNext,
  type Ceilings,
  ceilingsHold,
  compileCeilings,
  crossedCeiling,
  emptyRunUsage,
  extractFromResponse,
  formatUsd,
  type HeldCall,
  type HeldCeiling,
  heldCeiling,
  heldRequest,
  type KillReason,
  NO_HOLD,
  type NormalizedUsage,
  PricingEngine,
  type RunHold,
  type RunUsage,
  runHeldMessage,
  type ServedAs,
  servedAsOf,
  toolCallModel,
  totalTokens,
  uuidv7,
} from "@tollgate/core";
import { type CallHold, callHold, type SdkCall } from "./call-hold.js";
import { ownStorage } from "./own-context.js";
import { type Admission, RunLine, type TryAdmit } from "./run-line.js";
import { MAX_TIMER_MS } from "./timer-ms.js";

/** Thrown by the next guarded LLM or tool call of a run that crossed a ceiling (or was killed by hand). */
export class AgentRunKilledError extends Error {
  override name = "AgentRunKilledError";
  readonly code = "agent_run_killed";
  /** The ceiling crossed ("manual" for a kill by hand), the run's count of it, and its limit. */
  readonly ceiling: KillReason["ceiling"];
  readonly value: string;
  readonly limit: string;
  constructor(
    readonly runId: string,
    readonly agentType: string,
    readonly reason: KillReason,
  ) {
    super(
      reason.ceiling === "manual"
        ? `agent run ${runId} (${agentType}) was killed: ${reason.value}`
        : `agent run ${runId} (${agentType}) crossed its ${reason.ceiling} ceiling (${reason.value} of ${reason.limit})`,
    );
    this.ceiling = reason.ceiling;
    this.value = reason.value;
    this.limit = reason.limit;
  }
}

/**
 * Thrown by an LLM call of a run whose calls in flight hold what is left under its cost or token ceiling,
 * once it has waited for them `holdWaitMs`: not a kill (room again, or the kill, once they settle). The
 * gateway's 429 `rate_limited` with its `agent_run` details: the ceiling, what the run used, what its calls
 * in flight hold, the limit, and what this call would hold (nano-USD or tokens, as digit strings).
 */
export class AgentRunHeldError extends Error {
  override name = "AgentRunHeldError";
  readonly code = "rate_limited";
  readonly ceiling: HeldCeiling["ceiling"];
  readonly used: string;
  readonly held: string;
  readonly limit: string;
  readonly requested: string;
  constructor(
    readonly runId: string,
    readonly agentType: string,
    held: HeldCeiling,
    hold: RunHold,
    /** The call, where known (a wrapped client's): its message tells how it could hold less. */
    call: HeldCall | null = null,
  ) {
    super(runHeldMessage(runId, agentType, held, hold, call));
    this.ceiling = held.ceiling;
    this.used = held.used;
    this.held = held.held;
    this.limit = held.limit;
    this.requested = heldRequest(held, hold);
  }
}

/** How long a call waits for its run's calls in flight by default: the gateway's TOLLGATE_RUN_HOLD_WAIT_MS. */
const HOLD_WAIT_MS = 30_000;

export interface AgentRunOptions {
  type: string;
  /** Defaults to a fresh uuid v7. */
  id?: string;
  limits: AgentCeilingsInput;
  /** Prices LLM replies for the cost ceiling; the built-in genai-prices data by default. */
  pricing?: PricingEngine;
  /** Provider the replies are priced as, when an LLM call does not say (default: from the api). */
  provider?: string;
  /**
   * How long an LLM call waits while the run's calls in flight hold what is left under its cost or token
   * ceiling, before it is refused with AgentRunHeldError (default 30 000 ms, as the gateway; 0: at once).
   */
  holdWaitMs?: number;
}

export interface LlmCallOptions {
  /** Provider to price as; defaults to the api's family (openai, anthropic, google, bedrock). */
  provider?: string;
  /** The model, when the reply does not carry it (Bedrock Converse). */
  model?: string;
}

let defaultEngine: PricingEngine | null = null;
/** One built-in engine for all runs that bring none (its price index is built once). */
export function builtinEngine(): PricingEngine {
  defaultEngine ??= new PricingEngine();
  return defaultEngine;
}

/**
 * One agent run's in-process guard: the same ceilings and limit math as the gateway (core's
 * `admitsNext` / `crossedCeiling` / `heldCeiling`), for loops that never pass through it. Every guarded LLM
 * or tool call checks first and counts after; once a ceiling is crossed, every later guarded call throws.
 * Under a cost or token ceiling, a wrapped client's call holds its worst case while in flight, and an LLM
 * call starts only while what is spent plus what is held stays under the ceiling (else it waits its turn).
 */
export class AgentRun {
  readonly id: string;
  readonly type: string;
  readonly #ceilings: Ceilings;
  readonly #engine: PricingEngine;
  readonly #usage: RunUsage;
  #killed: KillReason | null = null;
  /** It submitted a background response through a wrapped client: it has one of its own to poll. */
  #submittedBackground = false;
  /** The `llm()`s past a ceiling whose callbacks have not yet told what their call is (#untoldUntilMade). */
  readonly #untold = new Set<Promise<void>>();
  /** What its calls in flight hold; null when no ceiling of the run holds anything (no cost or token one). */
  readonly #held: RunHold | null;
  readonly #holdWaitMs: number;
  /** Calls waiting for its calls in flight to leave room. */
  readonly #line = new RunLine();

  constructor(opts: AgentRunOptions) {
    const parsed = AgentCeilingsSchema.safeParse(opts.limits);
    if (!parsed.success)
      throw new TypeError(
        `agentRun limits: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      );
    this.id = opts.id ?? uuidv7();
    this.type = opts.type;
    this.#ceilings = compileCeilings(parsed.data);
    this.#engine = opts.pricing ?? builtinEngine();
    this.#usage = emptyRunUsage(Date.now());
    this.#held = ceilingsHold(this.#ceilings) ? { cost_nanousd: 0n, total_tokens: 0 } : null;
    this.#holdWaitMs = holdWaitMsOf(opts.holdWaitMs);
  }

  get usage(): Readonly<RunUsage> {
    return { ...this.#usage };
  }

  get killed(): KillReason | null {
    return this.#killed;
  }

  /** What its calls in flight hold: their worst-case cost and token estimates (0 without such ceilings). */
  get held(): Readonly<RunHold> {
    return this.#held ? { ...this.#held } : NO_HOLD;
  }

  get costUsd(): string {
    return formatUsd(this.#usage.cost_nanousd);
  }

  /** Attribution headers for calls that go through the gateway, so it counts them against the same run. */
  headers(): Record<string, string> {
    return {
      "x-tollgate-agent-run-id": this.id,
      "x-tollgate-agent-type": this.type,
      "x-tollgate-span-depth": String(this.#currentDepth() + 1),
    };
  }

  /** Stops the run by hand: the next guarded call throws. */
  kill(reason = "killed by hand"): void {
    this.#killed ??= { ceiling: "manual", value: reason, limit: "-", at: Date.now() };
    this.#line.wake(); // the calls waiting are refused
  }

  /**
   * Runs one LLM call under the guard: refused before it starts when the run is over a ceiling; its reply's
   * usage (non-streamed JSON body of `api`) is counted and priced after. Its request is not known here: a
   * wrapped client's call inside holds its worst case once made. While the run's calls in flight hold what
   * is left under its cost or token ceiling, an OpenAI or Anthropic call runs at once and the wrapped
   * client's call inside waits for room in its place, as one made directly (up to its own timeout, ended by
   * its signal; a background response's poll needs none), as does one let in that finds the room gone by
   * the time it is made; a call of any other API waits here first. It is
   * counted as its callback starts, so max_llm_calls holds whatever the callback makes; a poll inside gives
   * the count back, and a wrapped call inside that must wait is counted only once it gets in. That count is
   * the first wrapped model call's made inside (a joined `llm()`'s too): each further one is an LLM call of
   * its own, checked at this depth before it is sent and counted, so max_llm_calls bounds requests. An OpenAI
   * Responses call at max_llm_calls (or max_depth) of a run that submitted a background response runs its
   * callback too, since that response's poll inside is no LLM call: a wrapped model call inside is refused,
   * killing the run, and a call of a client not wrapped, which cannot be told from a poll, goes as the one
   * past the ceiling, killing it (a run with no response to poll refuses it before its callback, as any).
   * Such callbacks start one at a time, each once the one before made its call, which alone counts it. A
   * `llm()` inside another of the run's (a helper that guards its own call) is that same call: it joins the
   * outermost, while that is in flight.
   */
  async llm<T>(api: Api, call: () => Promise<T>, opts: LlmCallOptions = {}): Promise<T> {
    const outer = llmInFlight(this);
    if (outer) return this.#joined(outer, api, call, opts);
    const depth = this.#currentDepth() + 1;
    // Whether its LLM call, with no room, is let in by the first wrapped call inside (see madeInside), not
    // here; and what refuses that call should it be a model call (it may be a poll, which nothing refuses).
    let waitsInside = false;
    let refusal: KillReason | null = null;
    let told: (() => void) | null = null;
    let untoldInside: readonly Promise<void>[] | null = null;
    if (!WRAPPED_API.test(api)) {
      const admitted = this.admitLlmCall(null);
      if (admitted) await admitted;
    } else {
      // One at a time past a ceiling: the next waits until this one's call tells what it is (not one made
      // inside its callback, a tool's there too, which it would wait on in turn).
      if (api === POLLED_API)
        for (let other = this.#untoldOutside(); other; other = this.#untoldOutside()) await other;
      refusal = this.#refusalUnlessPoll(api, depth);
      if (refusal) [untoldInside, told] = this.#untoldUntilMade();
      else if (!this.#tryLlmCall(null, depth, false)) {
        // No room: its callback runs at once all the same, so it is counted as it starts, as one let in is
        // (else calls made so at once would all pass max_llm_calls); see madeInside for what takes it back.
        waitsInside = true;
        this.#usage.llm_calls++;
      }
    }
    // A wrapped client's first model call inside is no LLM call of its own (counted here), but counts its
    // usage: its record reads it, streamed or not, and its hold goes only once that is counted.
    const scope: LlmScope = {
      settled: false,
      wrapped: false,
      // One past a ceiling is not counted as it starts: counted over the ceiling, it would kill the run
      // (any check meanwhile, another poll's) before it tells whether it is a poll.
      countLeft: refusal === null,
      provisional: true,
      madeInside: (kind) => {
        if (!scope.provisional) return;
        scope.provisional = false;
        told?.();
        // A poll is no LLM call (its submission was); a model call without room then waits uncounted, as one
        // made directly, and is counted as it gets in (nothing counted should it never); one past a ceiling
        // is refused as it is made.
        if (scope.countLeft && (kind === "poll" || waitsInside)) {
          this.#usage.llm_calls--;
          scope.countLeft = false;
        }
      },
      admit: (hold, signal, timeoutMs) => {
        scope.madeInside("model");
        // The first model call inside is the LLM call counted as the callback started: it only holds, if
        // there is still room (its callback may have awaited first, while calls made together took theirs);
        // else it waits as one that found none, counted as it gets in.
        if (scope.countLeft) {
          scope.countLeft = false;
          if (this.#tryHold(hold, false)) return null;
          this.#usage.llm_calls--;
        }
        // Any other is an LLM call of its own (each request of a tool loop, a retry, calls made together),
        // so max_llm_calls bounds requests: checked at this llm()'s depth, and counted as it gets in.
        return this.#admitLlmCallAt(hold, depth, signal, timeoutMs);
      },
    };
    try {
      const frame: LlmFrame = { scope, reply: { usageCounted: false, joined: new Set() }, late: false };
      // Awaited inside its frame (async): a thenable's then() makes its calls there (Anthropic's toolRunner).
      const inside = () => inFrame(this, frame, () => this.#nested(async () => call()));
      const reply = await (untoldInside ? inRunStore(untoldAbove, this, untoldInside, inside) : inside());
      this.#countUnread(frame, api, reply, opts);
      return reply;
    } finally {
      scope.settled = true;
      // No wrapped call inside told what it was: a client not wrapped made its call, the one past the ceiling
      // (not so an SDK helper's returned, which makes its wrapped call a tick later, and tells then).
      if (refusal && scope.provisional && !scope.wrapped) {
        this.#usage.llm_calls++;
        this.#killed ??= refusal;
      }
      told?.();
      // Said however the callback ended: one that throws after its call was no more held for it.
      if (!scope.wrapped && this.#held) warnUnheld(this);
      this.#line.wake(); // settled, whether or not it held anything: the next in line tries
    }
  }

  /**
   * A `llm()` made inside `outer`, the run's `llm()` it is the same call as: checked, counted, nested and
   * admitted there, not again. Its reply's usage is counted once, here (it may be read from nowhere else:
   * the outer callback may return something else), unless a wrapped call inside it counted it already; each
   * of several joined to one counts its own. The outer callback's reply, when it is this one (or its body),
   * is not counted again; one of its own call is.
   */
  async #joined<T>(outer: LlmFrame, api: Api, call: () => Promise<T>, opts: LlmCallOptions): Promise<T> {
    const frame: LlmFrame = { ...outer, reply: { usageCounted: false, joined: new Set() } };
    const reply = await inFrame(this, frame, async () => call()); // a thenable read inside it too
    this.#countUnread(frame, api, reply, opts);
    outer.reply.joined.add(bodyOf(reply));
    return reply;
  }

  /** Counts the reply of `frame`'s `llm()`, unless a wrapped call there counted it, or it is a joined one's. */
  #countUnread(frame: LlmFrame, api: Api, reply: unknown, opts: LlmCallOptions): void {
    if (!frame.reply.usageCounted && !frame.reply.joined.has(bodyOf(reply)))
      this.#countReply(api, reply, opts);
  }

  /**
   * Checks and counts one LLM call about to be made; its usage follows through `recordUsage`. Throws
   * AgentRunKilledError when the run is over, and AgentRunHeldError at once when its calls in flight hold
   * what is left under a ceiling (a call made so cannot wait its turn, nor hold anything).
   */
  beginLlmCall(): void {
    this.#tryLlmCall(null, this.#currentDepth() + 1, true);
  }

  /** Whether its calls hold anything while in flight: it has a cost or token ceiling. */
  get holds(): boolean {
    return this.#held !== null;
  }

  /** What a call would hold on this run while in flight (wrapped clients); null when no ceiling holds. */
  holdOf(call: SdkCall): CallHold | null {
    return this.#held && callHold(this.#engine, this.#ceilings, call, Date.now());
  }

  /**
   * Admits one LLM call about to be made (what wrapped clients do for every call inside the run), counted,
   * and holding `hold` until it settles (`releaseHold`): null when admitted at once. While the run's calls
   * in flight hold what is left under its cost or token ceiling, the call waits its turn (the promise:
   * "admitted", or "aborted" when `signal` aborts first, nothing counted or held), up to `holdWaitMs`, or
   * the call's own `timeoutMs` when sooner (its wait counts against it). Refused, it throws (or the wait
   * rejects): AgentRunKilledError, or AgentRunHeldError past the wait.
   */
  admitLlmCall(hold: CallHold | null, signal?: AbortSignal, timeoutMs?: number): Promise<Admission> | null {
    return this.#admitLlmCallAt(hold, this.#currentDepth() + 1, signal, timeoutMs);
  }

  /** admitLlmCall for a call made at `depth` (a wrapped call inside `llm()`: that `llm()`'s). */
  #admitLlmCallAt(
    hold: CallHold | null,
    depth: number,
    signal?: AbortSignal,
    timeoutMs?: number,
  ): Promise<Admission> | null {
    return this.#whenRoom((final) => this.#tryLlmCall(hold, depth, final), hold === null, signal, timeoutMs);
  }

  /**
   * A call admitted by `tryAdmit` at once (null), else its wait in the line (see admitLlmCall); `holdsLater`
   * when it takes its hold only once admitted, the wrapped call inside it (`llm()`'s).
   */
  #whenRoom(
    tryAdmit: TryAdmit,
    holdsLater: boolean,
    signal?: AbortSignal,
    timeoutMs?: number,
  ): Promise<Admission> | null {
    const wait = timeoutMs === undefined ? this.#holdWaitMs : Math.min(this.#holdWaitMs, timeoutMs);
    if (tryAdmit(wait === 0)) return null;
    return this.#line.wait(tryAdmit, wait, holdsLater, signal);
  }

  /** A call admitted as `llm()`'s holds `hold` until it settles (`releaseHold`). */
  hold(hold: RunHold): void {
    if (!this.#held) return;
    this.#held.cost_nanousd += hold.cost_nanousd;
    this.#held.total_tokens += hold.total_tokens;
  }

  /**
   * A call lets its hold go as it settles; its usage was counted already (recordUsage). A call whose cost
   * stays unknown (`costUnknown`: a reply without usage, a call dropped unread) counts the hold itself, as
   * the gateway counts it. The calls waiting try again.
   */
  releaseHold(hold: RunHold, costUnknown: boolean): void {
    if (!this.#held) return;
    this.#held.cost_nanousd -= hold.cost_nanousd;
    this.#held.total_tokens -= hold.total_tokens;
    if (costUnknown) {
      this.#usage.cost_nanousd += hold.cost_nanousd;
      this.#usage.total_tokens += hold.total_tokens;
      this.#check();
    }
    this.#line.wake();
  }

  /**
   * A wrapped client submitted a background response for it: from now on, an `llm()` of the OpenAI
   * Responses API past max_llm_calls or max_depth may be its poll, so it runs its callback to tell.
   */
  backgroundSubmitted(): void {
    this.#submittedBackground = true;
  }

  /** An admitted LLM call that was never sent (its SDK threw first): no LLM call of the run. */
  unsentLlmCall(): void {
    this.#usage.llm_calls = Math.max(0, this.#usage.llm_calls - 1);
  }

  /**
   * Counts one LLM call and takes its hold, when the run has room for it: false while its calls in flight
   * hold what is left under a cost or token ceiling (thrown as AgentRunHeldError when `final`). Throws
   * AgentRunKilledError when the run is over a ceiling.
   */
  #tryLlmCall(hold: CallHold | null, depth: number, final: boolean): boolean {
    this.#admit("llm", depth);
    if (!this.#tryHold(hold, final)) return false;
    this.#usage.llm_calls++;
    return true;
  }

  /**
   * Takes `hold` when the run has room for it (for the call #tryLlmCall counts): false while its calls in
   * flight hold what is left under a cost or token ceiling (thrown as AgentRunHeldError when `final`).
   * Throws AgentRunKilledError when the run is over a ceiling.
   */
  #tryHold(hold: CallHold | null, final: boolean): boolean {
    this.#refuseIfOver();
    const full = this.#held && heldCeiling(this.#usage, this.#held, this.#ceilings);
    if (full) {
      if (final) throw new AgentRunHeldError(this.id, this.type, full, hold ?? NO_HOLD, hold?.call ?? null);
      return false;
    }
    if (hold) this.hold(hold);
    return true;
  }

  /** Throws AgentRunKilledError when the run is killed, or over a ceiling (which kills it). */
  #refuseIfOver(): void {
    this.#killed ??= crossedCeiling(this.#usage, this.#ceilings, Date.now());
    if (this.#killed) throw new AgentRunKilledError(this.id, this.type, this.#killed);
  }

  /**
   * Marks an `llm()` past a ceiling as in flight until its first wrapped call tells what it is (or it ends):
   * the next such waits (#untold), so a client not wrapped passes the ceiling by one call, never more.
   * Returns the marks its callback runs inside (those above it, and its own), and what ends its own; called
   * again, that does nothing.
   */
  #untoldUntilMade(): [readonly Promise<void>[], () => void] {
    let made!: () => void;
    const untold = new Promise<void>((resolve) => {
      made = resolve;
    });
    this.#untold.add(untold);
    const told = () => {
      this.#untold.delete(untold);
      made();
    };
    return [[...(untoldAbove.getStore()?.get(this) ?? []), untold], told];
  }

  /**
   * An `llm()` past a ceiling yet to tell what its call is, other than those the caller is inside of (one
   * inside of, a tool's there say, would wait on the call in turn): told marks go, an outer one's stays.
   */
  #untoldOutside(): Promise<void> | undefined {
    const above = untoldAbove.getStore()?.get(this) ?? [];
    return [...this.#untold].find((mark) => !above.includes(mark));
  }

  /**
   * What would refuse the LLM call `llm()` of `api` is about to make at `depth` as a model call (max_llm_calls
   * or max_depth reached), when it may be a background response's poll instead (an OpenAI Responses call of
   * a run that submitted one), which is no LLM call: told only by the wrapped call inside. Null when nothing
   * would, or it may not be a poll (refused here then, as any call: a run with no response of its own to
   * poll refuses a client not wrapped before it makes its call, which could not be told from a poll then).
   * A run killed or over a ceiling throws AgentRunKilledError here, poll or not: a kill holds around any
   * client, whose call cannot be told from a poll until it is made.
   */
  #refusalUnlessPoll(api: Api, depth: number): KillReason | null {
    if (api !== POLLED_API || !this.#submittedBackground) return null;
    this.#refuseIfOver();
    return admitsNext(this.#usage, this.#ceilings, "llm", depth, Date.now());
  }

  /**
   * Counts usage of an LLM call made elsewhere (a stream you read yourself, another client); priced on the
   * service tier the provider says it served, when given (OpenAI's flex is billed at batch rates), and at
   * the batch rate for a call a batch ran; at the prices of `at` (the call's time; default now).
   */
  recordUsage(
    usage: NormalizedUsage,
    cost:
      | {
          provider: string;
          model: string;
          serviceTier?: string | null;
          servedAs?: ServedAs | null;
          batch?: boolean;
          at?: number;
        }
      | { nanousd: bigint },
  ): void {
    const nanousd =
      "nanousd" in cost
        ? cost.nanousd
        : this.#engine.price({ ...cost, usage, at: cost.at ?? Date.now() }).cost.total_nanousd;
    this.#usage.cost_nanousd += nanousd;
    this.#usage.total_tokens += totalTokens(usage);
    this.#check();
  }

  /** Tool calls so far, by tool name. */
  readonly toolCalls = new Map<string, number>();

  /** Runs one tool call under the guard (nested calls inside it are one level deeper). */
  async tool<T>(name: string, call: () => Promise<T> | T): Promise<T> {
    this.#admit("tool");
    this.#usage.tool_calls++;
    this.toolCalls.set(name, (this.toolCalls.get(name) ?? 0) + 1);
    // A step of its own, inside `llm()` too: the LLM calls it makes are calls of their own, one level deeper.
    return inFrame(this, undefined, () => this.#nested(async () => call()));
  }

  #currentDepth(): number {
    return depths.getStore()?.get(this) ?? 0;
  }

  #nested<T>(call: () => Promise<T>): Promise<T> {
    const depth = this.#currentDepth() + 1;
    this.#usage.span_depth = Math.max(this.#usage.span_depth, depth);
    return inRunStore(depths, this, depth, call);
  }

  #admit(kind: "llm" | "tool", depth = this.#currentDepth() + 1): void {
    if (!this.#killed) this.#killed = admitsNext(this.#usage, this.#ceilings, kind, depth, Date.now());
    if (this.#killed) throw new AgentRunKilledError(this.id, this.type, this.#killed);
  }

  #check(): void {
    if (this.#killed) return;
    this.#killed = crossedCeiling(this.#usage, this.#ceilings, Date.now());
    if (this.#killed) this.#line.wake(); // the calls waiting are refused
  }

  #countReply(api: Api, reply: unknown, opts: LlmCallOptions): void {
    const body = bodyOf(reply);
    let extracted: ReturnType<typeof extractFromResponse>;
    try {
      extracted = extractFromResponse(api, body);
    } catch {
      this.#check(); // no usage in the reply (e.g. a stream): counted as a call, priced at zero
      return;
    }
    const provider = opts.provider ?? api.split(".")[0]!;
    const model = extracted.model ?? opts.model ?? "unknown";
    const servedAs = servedAsOf(extracted.usage_raw);
    this.recordUsage(extracted.usage, { provider, model, serviceTier: extracted.service_tier, servedAs });
    // What a hosted tool did on its own model (an image, an advisor's advice), at that model's rates (a call
    // of its own, not another LLM call).
    const tool = extracted.tool_model_call;
    if (tool?.usage) this.recordUsage(tool.usage, { provider, model: toolCallModel(tool, null) });
  }
}

/** A reply's body: openai-node returns the parsed body; withResponse() callers can pass `{ data }` instead. */
function bodyOf(reply: unknown): unknown {
  return (reply as { data?: unknown })?.data ?? reply;
}

/** `holdWaitMs` checked: a NaN, negative or overlong wait would refuse at once, or never, by mistake. */
function holdWaitMsOf(ms: unknown): number {
  if (ms === undefined) return HOLD_WAIT_MS;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0 || ms > MAX_TIMER_MS)
    throw new TypeError(
      `agentRun holdWaitMs must be a number of ms from 0 (at once) to ${MAX_TIMER_MS}, got ${String(ms)}`,
    );
  return ms;
}

/** The APIs of the clients wrapOpenAI and wrapAnthropic wrap: a call of one inside `llm()` can wait there. */
const WRAPPED_API = /^(openai|anthropic)\./;
/** The API a wrapped client's poll of a background response (`responses.retrieve`) inside `llm()` is of. */
const POLLED_API: Api = "openai.responses";

const current = ownStorage<AgentRun>();
/** How deep in its tool and LLM calls the caller is, by run (a run's nested calls are one level deeper). */
const depths = ownStorage<ReadonlyMap<AgentRun, number>>();
/**
 * Inside the callbacks of a run's `llm()`s past a ceiling yet to tell what their call is (their tool calls'
 * too), by run: the marks they set, which no call there waits on.
 */
const untoldAbove = ownStorage<ReadonlyMap<AgentRun, readonly Promise<void>[]>>();
/**
 * Inside `run.llm(…)`: whether a wrapped client's call was made inside at all (else nothing held
 * while it was in flight), whether its LLM call is counted, what the first wrapped call inside was (a model
 * call, a background response's poll), and how a wrapped model call inside is admitted (the first as that
 * call, each further one as one more).
 */
interface LlmScope {
  /** Its callback settled: a call its work left running makes later is a call of its own (llmInFlight). */
  settled: boolean;
  wrapped: boolean;
  /** Its LLM call, counted as its callback started, not yet taken by a model call made inside (admit). */
  countLeft: boolean;
  /** Counted as its callback started, until the first wrapped call inside tells what it is (madeInside). */
  provisional: boolean;
  madeInside(kind: "model" | "poll"): void;
  admit(hold: CallHold | null, signal?: AbortSignal, timeoutMs?: number): Promise<Admission> | null;
}
/**
 * Where a call is made inside `run.llm(…)`: the LLM call it is part of (`scope`), and the reply whose usage a
 * wrapped call made there counts (`run.llm`'s own, or that of a `llm()` joined to it), so that reply's usage
 * is not read again.
 */
interface LlmFrame {
  scope: LlmScope;
  reply: {
    usageCounted: boolean;
    /** The bodies of the replies of `llm()`s joined to it, counted there: its own reply, when one, is not. */
    joined: Set<unknown>;
  };
  /** Inside an SDK helper called in flight (madeForLlm): a wrapped call there is the scope's, however late. */
  late: boolean;
}
/**
 * Set inside `run.llm(…)` (not inside a tool call of its run there): the call there is counted by the run
 * itself. Kept by run, so that a run's `llm()` inside another run's `llm()` inside its own still joins it.
 */
const counted = ownStorage<ReadonlyMap<AgentRun, LlmFrame>>();

/** Runs `fn` inside `frame` of `run` (undefined: outside its `llm()`), other runs' frames kept as they are. */
function inFrame<T>(run: AgentRun, frame: LlmFrame | undefined, fn: () => T): T {
  return inRunStore(counted, run, frame, fn);
}

/**
 * Runs `fn` with `run`'s value in `store` (a store kept by run) set to `value` (undefined: none), other runs'
 * kept as they are. By run in one store, not a store per run: traced() puts Tollgate's stores back, which it
 * could not find were they a run's own.
 */
function inRunStore<V, T>(
  store: AsyncLocalStorage<ReadonlyMap<AgentRun, V>>,
  run: AgentRun,
  value: V | undefined,
  fn: () => T,
): T {
  const values = new Map(store.getStore());
  if (value === undefined) values.delete(run);
  else values.set(run, value);
  return store.run(values, fn);
}

/**
 * Where in `run.llm(…)` of `run` the caller is, while its callback is in flight: the call it counts.
 * Undefined outside one, and once it settled (work its callback left running makes calls of their own),
 * but for a wrapped call (`wrapped`) an SDK helper called in flight makes late (madeForLlm).
 */
function llmInFlight(run: AgentRun, wrapped = false): LlmFrame | undefined {
  const frame = counted.getStore()?.get(run);
  if (!frame) return undefined;
  return !frame.scope.settled || (wrapped && frame.late) ? frame : undefined;
}

/**
 * Runs an SDK helper that makes its wrapped calls a tick after it returns (openai-node's `stream()` and
 * `runTools()`): made inside `run.llm(…)`, whose callback may return the helper before they are made, they
 * are that `run.llm`'s call however late, not calls of their own past it.
 */
export function madeForLlm<T>(helper: () => T): T {
  const run = current.getStore(); // the run its wrapped calls belong to (agentRunOfCall)
  const frame = run && counted.getStore()?.get(run);
  if (!run || !frame || (frame.scope.settled && !frame.late)) return helper();
  frame.scope.wrapped = true; // a wrapped client's: its call holds, though maybe made once the scope settled
  return inFrame(run, { ...frame, late: true }, helper);
}

/**
 * Runs `fn` as one agent run with in-process ceilings. Inside, `guard.llm(api, () => client.…)` and
 * `guard.tool(name, fn)` are checked before and counted after; the first call past a ceiling throws
 * AgentRunKilledError (so does every later one). `currentAgentRun()` finds the run from anywhere below.
 */
export function agentRun<T>(opts: AgentRunOptions, fn: (guard: AgentRun) => Promise<T> | T): Promise<T> {
  const run = new AgentRun(opts);
  return current.run(run, async () => fn(run));
}

/** The agent run the caller is inside of, if any (for helpers deep in the call tree). */
export function currentAgentRun(): AgentRun | undefined {
  return current.getStore();
}

/**
 * The run a wrapped client's call belongs to, and whether that client should check and count it
 * (not when the app already wraps the call in `run.llm`).
 */
export function agentRunOfCall(): { run: AgentRun; counts: boolean } | undefined {
  const run = current.getStore();
  if (!run) return undefined;
  const counts = !llmInFlight(run, true);
  // One its settled `run.llm`'s work left running counts its usage itself: a `llm()` joined there, still to
  // read its reply, reads none from it.
  const left = counted.getStore()?.get(run);
  if (counts && left) left.reply.usageCounted = true;
  return { run, counts };
}

/** What a wrapped client's call made inside `run.llm(…)` tells it, kept by the call (see wrappedInLlm). */
export interface CallInLlm {
  /** The call counts its usage to the run itself (as its record reads it): the reply's is not counted again. */
  usageCounted(): void;
  /**
   * A model call, holding `hold` while in flight: the first inside as the LLM call `run.llm` counted, at
   * once (null) when `run.llm` was let in and there is room still; else (a further one too, one more LLM
   * call) checked and counted once there is room, waiting as a call made directly (AgentRun.admitLlmCall).
   */
  admit(hold: CallHold | null, signal?: AbortSignal, timeoutMs?: number): Promise<Admission> | null;
  /** A background response's poll: no LLM call (its submission was), so it takes no room either. */
  polls(): void;
}

/**
 * A wrapped client's call (a model call, which holds; a poll, which need not) is made inside `run.llm(…)` of
 * `run`: what it tells that `run.llm`, kept by the call, since its reply may be read outside the scope (an
 * APIPromise returned from `run.llm`'s callback is parsed by `run.llm`'s own await). Undefined outside one.
 */
export function wrappedInLlm(run: AgentRun): CallInLlm | undefined {
  const frame = llmInFlight(run, true);
  if (!frame) return undefined;
  const { scope, reply } = frame;
  scope.wrapped = true;
  return {
    usageCounted: () => {
      reply.usageCounted = true;
    },
    admit: scope.admit,
    polls: () => scope.madeInside("poll"),
  };
}

let unheldWarned = false;
/**
 * A `run.llm(…)` of a run with a cost or token ceiling made no wrapped client's call: nothing held its worst
 * case while in flight, since `run.llm` does not see the request. Said once a process (a process warning).
 */
function warnUnheld(run: AgentRun): void {
  if (unheldWarned) return;
  unheldWarned = true;
  process.emitWarning(
    `agent run ${run.id} (${run.type}): run.llm(…) made no call of a client wrapped by wrapOpenAI / ` +
      "wrapAnthropic, so nothing held its worst case against the run's cost or token ceiling while it was " +
      "in flight: calls in parallel may pass the ceiling by more than one call. Wrap the client to hold it " +
      "(said once a process).",
    { code: "TOLLGATE_LLM_UNHELD" },
  );
}
