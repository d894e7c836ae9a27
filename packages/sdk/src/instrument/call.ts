import {
  type Api,
  type BackgroundResponse,
  type BatchResult,
  billsCharacters,
  CACHED_MEDIA_FIELDS,
  type CallRecordInput,
  type ExtractedUsage,
  estimateCutShortUsage,
  fieldText,
  INPUT_LIMITS,
  imageToolOf,
  MEASURE_FIELDS,
  type NormalizedUsage,
  type RunHold,
  requestedToolModel,
  type StreamShown,
  servedAsOf,
  speechUsage,
  TOOL_CALL_FIELDS,
  type ToolModelCall,
  toolCallModel,
  toolModelCallInput,
  transcriptionBilling,
  uuidv7,
} from "@tollgate/core";
import { type AgentRun, agentRunOfCall, builtinEngine, wrappedInLlm } from "../agent-run.js";
import type { SdkCall } from "../call-hold.js";
import { childSpan, currentScope } from "../context.js";
import { namedEventId, responseEventId } from "../ids.js";
import type { Admission } from "../run-line.js";

/** The error type of a call answered without usage it can read: still an ok call, its cost unknown. */
export const USAGE_UNREADABLE = "usage_unreadable";

/**
 * The error type of a background response's stream the app left before its first event named the response:
 * the response runs on at the provider, unseen (nothing else names it, so nothing can follow it): an ok
 * call, its cost unknown, as one without usage it can read.
 */
export const BACKGROUND_UNSEEN = "background_unseen";

/** A call recorded so is answered, its cost unknown: an ok call, which counts the worst case it held. */
function costUnknown(errorType: string | null): boolean {
  return errorType === USAGE_UNREADABLE || errorType === BACKGROUND_UNSEEN;
}

/** Usage counts servers took on later: left out of a record where 0, so that an older server takes it. */
const LATER_FIELDS = [
  ...TOOL_CALL_FIELDS,
  ...CACHED_MEDIA_FIELDS,
  "output_image_tokens",
  ...MEASURE_FIELDS,
] as const;

/** Which API a wrapped method speaks, and the provider its calls are priced as. */
export interface CallSpec {
  api: Api;
  kind: "llm" | "embedding";
  provider: string;
  /** The app's own cost for calls Tollgate cannot price (custom models): nano-USD, or null to let the server price. */
  estimateCost?: CostEstimator;
  /** The client's own polls of its background responses (OpenAI Responses). */
  background?: BackgroundPolls;
  /** The model a request that names none runs on (OpenAI's image models: the reply names none either). */
  defaultModel?: (body: Record<string, unknown>) => string;
  /** Its params go out as a multipart upload (files), not as JSON. */
  upload?: boolean;
}

/**
 * Own polls of background responses: `follow` a submission (polled with its request's headers and query),
 * `seen` when the app polls one itself.
 */
export interface BackgroundPolls {
  follow(responseId: string, request: PollOptions): void;
  seen(responseId: string): void;
}

/** Of a request's options, what a poll of its response sends too (an organization or project header, say). */
export interface PollOptions {
  headers?: unknown;
  query?: unknown;
}

/**
 * The models a request names, which its call is priced at where its reply names none: its own (else its
 * API's default), and its hosted tool's (a Responses image tool's, an advisor's).
 */
export interface RequestedModels {
  model: string | null;
  tool: string | null;
}

export type CostEstimator = (call: {
  provider: string;
  model: string;
  usage: NormalizedUsage;
}) => bigint | null;

export type RecordSink = (record: CallRecordInput) => void;

/** How a call ended, as far as a record needs to know. */
export interface Outcome {
  usage: ExtractedUsage | null;
  httpStatus: number | null;
  requestId: string | null;
  /** null when the call succeeded. */
  errorType: string | null;
  /** Usage was estimated (a stream cut short before the provider reported any). */
  estimated?: boolean;
  /** Recorded as this kind instead of the spec's (a background response's submission: other). */
  kind?: CallSpec["kind"] | "other";
  /** Recorded as this API's call instead of the spec's (a batch's results hold calls of several APIs). */
  api?: Api;
  /** A call a batch ran, priced at the batch rate. */
  batch?: true;
  /**
   * A background response's submission (or its stream cut short): the response runs on at the provider, so
   * the call keeps its hold until the response is found finished, an hour at the most.
   */
  runsOn?: boolean;
  /** Recorded under this event id instead of a new one (a background response's stream read to its end). */
  eventId?: string;
  /** When it ended (performance.now()), if not now: a stream the app dropped ended where its reading stopped. */
  endedAtMs?: number;
}

/** What a call holds on its agent run until it settles. */
interface Holding {
  run: AgentRun;
  hold: RunHold;
  /** When a background response's hold goes, should nothing find the response finished. */
  expiry?: ReturnType<typeof setTimeout>;
}

/** How long a background response's submission holds at the most: the gateway's reservation TTL. */
const BACKGROUND_HOLD_MS = 3_600_000;

/**
 * Calls collected while they still hold on their run (a stream never read, a reply never awaited: nothing
 * can read them any more) let their hold go, counted at its worst case: their cost is unknown, as the
 * gateway counts such a call.
 */
const unread = new FinalizationRegistry<Holding>((h) => h.run.releaseHold(h.hold, true));

/** What a record says of its call's occasion: its id, when it happened, and whether it streamed. */
interface Occasion {
  eventId: string;
  tsStart: number;
  tsEnd: number | null;
  ttftMs: number | null;
  stream: boolean;
}

/**
 * One wrapped LLM call from start to record: captures the scope (attribution, parent span) and the
 * agent run at the call site, times it, and turns its outcome into exactly one call record. A call sent
 * from here (`admit`) holds its worst case on its agent run until that record (or until it is collected
 * unread).
 */
export class TrackedCall {
  /** When it was sent: a call that waited for room under its run's ceilings, once admitted (as at the gateway). */
  #startMs = Date.now();
  #start = performance.now();
  #firstEventAt: number | null = null;
  #events = 0;
  #done = false;
  #backgroundDone = false;
  readonly #scope = currentScope();
  readonly #run = agentRunOfCall();
  /** What it tells the `run.llm(…)` it was made in, if any (its usage is counted here, not from its reply). */
  readonly #inLlm = this.#run?.counts === false ? wrappedInLlm(this.#run.run) : undefined;
  /** Counted as one of its run's LLM calls (`admit`, `begin`); inside `run.llm(…)`, the first holds its count. */
  #counted = false;
  /** Counts its usage to its run: as one of its LLM calls, or as the call of `run.llm(…)` it was made in. */
  #countsUsage = this.#run?.counts === true;
  #holding: Holding | null = null;

  /**
   * An LLM call of its agent run once `admit`ted (or `begin`); else none (a background response's poll:
   * its submission was counted; a batch's results).
   */
  constructor(
    readonly spec: CallSpec,
    body: Record<string, unknown>,
    private readonly sink: RecordSink,
  ) {
    this.#body = body;
  }

  /**
   * A call about to be sent, admitted by its agent run as one of its LLM calls (see AgentRun.admitLlmCall:
   * null once admitted; else the wait for room under its ceilings), holding its worst case until it
   * settles. Refused, it throws (a killed run) and nothing is to be sent. Inside `run.llm(…)`, the first is
   * admitted as the call it counted (waiting in its place when `run.llm` found no room), a further one as
   * one more, and counts its usage for it. Its wait ends when `signal` aborts, and at its `timeoutMs` when
   * that is sooner than its run's holdWaitMs.
   */
  admit(signal?: AbortSignal, timeoutMs?: number): Promise<Admission> | null {
    const of = this.#run;
    if (!of) return null;
    const run = of.run;
    const hold = run.holds ? run.holdOf(this.#toHold()) : null;
    if (this.#inLlm) {
      this.#inLlm.usageCounted();
      this.#countsUsage = true;
    }
    const waited = this.#inLlm
      ? this.#inLlm.admit(hold, signal, timeoutMs)
      : run.admitLlmCall(hold, signal, timeoutMs);
    if (!waited) {
      this.#counted = true;
      this.#keep(run, hold);
      return null;
    }
    return waited.then((how) => {
      this.#counted = how === "admitted";
      if (how === "admitted") this.#keep(run, hold);
      // Sent now (aborted: refused by its SDK now): its wait is no latency of its own.
      this.#startMs = Date.now();
      this.#start = performance.now();
      return how;
    });
  }

  /**
   * A call that cannot wait (a Realtime response the server started already): counted as one of its agent
   * run's LLM calls, holding nothing, or refused at once (AgentRunKilledError, AgentRunHeldError).
   */
  begin(): void {
    if (!this.#run?.counts) return;
    this.#run.run.beginLlmCall();
    this.#counted = true;
  }

  /**
   * Admitted, but never sent (the provider's SDK threw first): no LLM call of its run, nothing held. Inside
   * `run.llm(…)` too: a retry it makes of it there is counted once, as it is sent.
   */
  unsent(): void {
    if (this.#counted) this.#run!.run.unsentLlmCall();
    this.#counted = false;
    this.#letGo(false);
  }

  #toHold(): SdkCall {
    const { api, provider, upload } = this.spec;
    return { api, provider, upload, model: this.#model() ?? "unknown", body: this.#body };
  }

  #keep(run: AgentRun, hold: RunHold | null): void {
    if (!hold) return;
    // Its figures alone, not the request a CallHold names: a background response's hold is kept up to an
    // hour, past keepForLater, which lets go of all of the request but what its record reads.
    this.#holding = { run, hold: { cost_nanousd: hold.cost_nanousd, total_tokens: hold.total_tokens } };
    unread.register(this, this.#holding, this.#holding);
  }

  /** Its hold let go as it settles: `costUnknown` counts the hold as its cost. */
  #letGo(costUnknown: boolean): void {
    const h = this.#holding;
    if (!h) return;
    this.#holding = null;
    clearTimeout(h.expiry);
    unread.unregister(h);
    h.run.releaseHold(h.hold, costUnknown);
  }

  #body: Record<string, unknown>;
  /** The request's headers and query, where a background response's own polls will need them. */
  pollOptions: PollOptions = {};
  /** The request's body (after `keepForLater`, only what the record reads of it). */
  get body(): Readonly<Record<string, unknown>> {
    return this.#body;
  }

  /** The agent run this call belongs to, if any, and whether the call counts for it (not inside `run.llm`). */
  get agentRun(): { run: AgentRun; counts: boolean } | undefined {
    return this.#run;
  }

  /**
   * This call will be recorded again later (a background response, when a poll finds it finished): keeps
   * only what that record reads of the request, not the whole request (a prompt may be megabytes).
   */
  keepForLater(): void {
    const { model, service_tier, stream } = this.#body;
    // The image generation tool, whose model its call is priced at, when the response does not name it.
    const imageTool = imageToolOf(this.#body);
    this.#body = { model, service_tier, stream, ...(imageTool ? { tools: [imageTool] } : {}) };
  }

  /** Its one record was made (finish). */
  get recorded(): boolean {
    return this.#done;
  }

  /** Speech always streams its audio (as the gateway records it). */
  get stream(): boolean {
    return this.body.stream === true || this.spec.api === "openai.speech";
  }

  /** A speech call's usage, known from its request: its characters where its model bills them, else estimated. */
  speechUsage(): { usage: ExtractedUsage; estimated: boolean } {
    return speechUsage(this.body, this.#billsCharacters());
  }

  /** Whether the call's model bills the characters of its text (tts-1), by the built-in prices. */
  #billsCharacters(): boolean {
    return billsCharacters(builtinEngine(), this.spec.provider, this.#model(), this.#startMs);
  }

  /** A streamed event arrived (the first one sets time to first token). */
  event(): void {
    this.#events++;
    this.#firstEventAt ??= performance.now();
  }

  /**
   * A stream ended early (the app stopped reading, or the connection broke) with what it reported and
   * showed so far: recorded as estimated, as the gateway records it; at `endedAtMs` (performance.now()) if
   * not now.
   */
  cutShort(
    partial: ExtractedUsage | null,
    errorType: string,
    httpStatus: number | null,
    requestId: string | null,
    shown?: StreamShown,
    endedAtMs?: number,
  ): void {
    const model = this.#model();
    const usage = estimateCutShortUsage(partial, {
      api: this.spec.api,
      model,
      requestBytes: JSON.stringify(this.body).length,
      events: this.#events,
      shown,
      request: this.body,
      // A transcription's estimate is its worst case, by the model's context window (as the gateway's).
      contextWindow: () => (model === null ? null : builtinEngine().contextWindow(this.spec.provider, model)),
      billedBy: () => transcriptionBilling(builtinEngine(), this.spec.provider, model, Date.now()),
      billsCharacters: () => this.#billsCharacters(),
    });
    this.finish({ usage, httpStatus, requestId, errorType, estimated: true, endedAtMs });
  }

  finish(o: Outcome): void {
    if (this.#done) return;
    this.#done = true;
    try {
      this.#emit(o, {
        eventId: o.eventId ?? uuidv7(this.#startMs),
        tsStart: this.#startMs,
        tsEnd: this.#startMs + Math.round((o.endedAtMs ?? performance.now()) - this.#start),
        ttftMs: this.#firstEventAt === null ? null : Math.round(this.#firstEventAt - this.#start),
        stream: this.stream,
      });
    } finally {
      // Counted first (recordUsage): the calls waiting for room see the spend in place of the hold. Let go
      // should the sink throw, too (collected later, it would count its worst case on top).
      if (o.runsOn) this.#holdWhileRunning();
      else this.#letGo(costUnknown(o.errorType));
    }
  }

  /**
   * Its background response runs on at the provider: its hold stays until the response is found finished,
   * an hour at the most (as the gateway's reservation), then goes with nothing spent.
   */
  #holdWhileRunning(): void {
    const h = this.#holding;
    if (h) h.expiry = setTimeout(() => this.#letGo(false), BACKGROUND_HOLD_MS).unref();
  }

  /** Its background response finished without usage (failed or cancelled before it ran): nothing billed, its hold goes. */
  backgroundUnbilled(): void {
    this.#letGo(false);
  }

  /**
   * Its background response's submission was forgotten (pushed out by newer ones): nothing here will find
   * the response finished for it, so its hold goes now, nothing spent, as at the hour's end (the poll that
   * finds it finished counts its cost for the poll's run, on top of nothing). A stream still being read
   * keeps its hold until its record.
   */
  submissionForgotten(): void {
    if (this.#done) this.#letGo(false);
  }

  /**
   * The usage of the reply it reads is counted to its run already (a poll that found its response finished):
   * the `run.llm(…)` it was made in does not count it again.
   */
  usageCounted(): void {
    this.#inLlm?.usageCounted();
  }

  /** A background response's poll: inside `run.llm(…)`, no LLM call (the response's submission was). */
  polls(): void {
    this.#inLlm?.polls();
  }

  /** The models its request names: those a poll prices the background response it submitted at. */
  get requestedModels(): RequestedModels {
    return { model: this.#model(), tool: requestedToolModel(this.spec.api, this.body) };
  }

  /**
   * A poll that found a background response finished, recorded for another run (or none): its cost counted
   * to the poll's own run here, priced as its record was, at the models its submission named (`submitted`:
   * the poll's own request names none), with no record of its own.
   */
  countBackgroundToRun(
    response: BackgroundResponse,
    usage: ExtractedUsage,
    submitted: RequestedModels,
  ): void {
    this.#countToRun(usage, response.createdMs ?? this.#startMs, { requested: submitted });
  }

  /**
   * The background response this call submitted (or a poll found), finished: its one llm record, with the
   * usage it reports, from its creation, counted to its run. Named by the response, so a poll after a
   * restart is stored once. Without usage it can read (`null`), an ok call of unknown cost: its hold is
   * counted as its cost, as any such call's.
   */
  finishBackground(response: BackgroundResponse, usage: ExtractedUsage | null): void {
    if (this.#backgroundDone) return;
    this.#backgroundDone = true;
    const errorType = usage ? response.failure : USAGE_UNREADABLE;
    const outcome = { usage, httpStatus: 200, requestId: response.id, errorType };
    const at = {
      eventId: responseEventId(response.id),
      tsStart: response.createdMs ?? this.#startMs,
      tsEnd: null,
      ttftMs: null,
      stream: false, // the response as a poll read it, as the gateway records it
    };
    // Counted to its run whether or not this call (a poll inside `run.llm`, say) counts, and before its
    // submission's hold goes: a call let in for the room sees the cost in the hold's place.
    try {
      this.#emit(outcome, at, "always");
    } finally {
      this.#letGo(costUnknown(errorType));
    }
  }

  /**
   * One answered request of a batch whose results this call read: a call at the batch rate, named by its
   * result (`eventId`), from when its reply was made. It counts towards the run's cost, not its LLM calls
   * (`countsRun: false`: the run counted this usage itself, a poll inside `run.llm`).
   */
  recordBatchResult(r: BatchResult, eventId: string, { countsRun = true } = {}): void {
    const requestId = fieldText(r.requestId) ?? fieldText(r.customId);
    const outcome = { usage: r.usage, httpStatus: 200, requestId, errorType: null };
    const at = { eventId, tsStart: r.createdMs ?? Date.now(), tsEnd: null, ttftMs: null, stream: false };
    this.#emit({ ...outcome, api: r.api, kind: r.kind, batch: true }, at, countsRun ? "as-call" : "never");
  }

  /**
   * `toRun`: whether the usage counts to the call's agent run: as the call does (not inside `run.llm`,
   * which counts the reply itself), always, or never.
   */
  #emit(o: Outcome, at: Occasion, toRun: "as-call" | "always" | "never" = "as-call"): void {
    const model = this.#modelOf(o.usage);
    const counted = toRun === "always" || (toRun === "as-call" && this.#countsUsage);
    // A batch's call: priced when it ran, as the server prices it.
    if (o.usage && counted) this.#countToRun(o.usage, at.tsStart, { batch: o.batch });
    const scope = this.#scope;
    const span = childSpan(scope);
    const record: CallRecordInput = {
      event_id: at.eventId,
      trace_id: span.trace_id,
      span_id: span.span_id,
      parent_span_id: span.parent_span_id,
      ts_start: at.tsStart,
      ts_end: at.tsEnd,
      ttft_ms: at.ttftMs,
      kind: o.kind ?? this.spec.kind,
      provider: this.spec.provider,
      api: o.api ?? this.spec.api,
      model_requested: this.#requestedModel(),
      model,
      stream: at.stream,
      // The tier the provider says it served (OpenAI's flex is billed at batch rates), else the one asked for.
      service_tier: fieldText(o.usage?.service_tier ?? this.body.service_tier, INPUT_LIMITS.shortText),
      // Answered, but without usage it can read (a DALL·E image reports none): ok, as the gateway has it.
      status: o.errorType === null || costUnknown(o.errorType) ? "ok" : "error",
      http_status: o.httpStatus,
      error_type: o.errorType,
      request_id: fieldText(o.requestId),
      usage_raw: o.usage?.usage_raw ?? null,
    };
    if (o.usage) {
      Object.assign(record, o.usage.usage);
      // Sent only when there are some: a server from before they were counted refuses the fields.
      for (const f of LATER_FIELDS) if (record[f] === 0) delete record[f];
    }
    if (o.estimated) record.cost_source = "estimated";
    if (o.batch) record.batch = true;
    // The app's own estimate knows no batch rate: a batch's calls are left to the server's prices.
    const own =
      o.usage && !o.batch
        ? this.spec.estimateCost?.({ provider: this.spec.provider, model, usage: o.usage.usage })
        : null;
    if (own != null) {
      record.cost_nanousd = own.toString(); // int64 as a digit string: exact past 2^53
      record.cost_source = "estimated";
    }
    if (this.#run) {
      record.agent_run_id = this.#run.run.id;
      record.agent_type = this.#run.run.type;
    }
    // Its own tags and metadata, not the scope's: a sink may change its record (add a tag on its way
    // elsewhere), which must not change the scope's other calls, nor a sibling scope that shares them.
    const { tags, metadata } = scope.attribution;
    Object.assign(record, scope.attribution, { tags: [...tags], metadata: { ...metadata } });
    // The tool's record is taken from this one before the sink may change it.
    const tool = o.usage?.tool_model_call;
    const toolRecord = tool ? this.#toolCallRecord(record, tool) : null;
    this.sink(record);
    if (toolRecord) this.sink(toolRecord);
  }

  /** The model a reply's usage is priced at: the one it names, else the one requested (as the record says). */
  #modelOf(usage: ExtractedUsage | null, requested = this.#model()): string {
    // Record fields as the gateway takes them (fieldText): a provider's odd value never loses the record.
    return fieldText(usage?.model) ?? requested ?? "unknown";
  }

  /**
   * Counts a reply's usage to the call's agent run, priced at `at`: the call's, and what a hosted tool did
   * on its own model, as cost, not as another LLM call, as the gateway counts it; where the reply names no
   * model, at those `requested` (this call's request's by default).
   */
  #countToRun(
    usage: ExtractedUsage,
    at: number,
    { batch, requested = this.requestedModels }: { batch?: true; requested?: RequestedModels } = {},
  ): void {
    const run = this.#run?.run;
    if (!run) return;
    const { provider } = this.spec;
    run.recordUsage(usage.usage, {
      provider,
      model: this.#modelOf(usage, requested.model),
      serviceTier: usage.service_tier,
      servedAs: servedAsOf(usage.usage_raw),
      batch,
      at,
    });
    const tool = usage.tool_model_call;
    if (tool?.usage)
      run.recordUsage(tool.usage, {
        provider,
        model: toolCallModel(tool, requested.tool),
        batch,
        at,
      });
  }

  /**
   * The call a hosted tool made on its own model (a Responses image tool's image, an advisor's advice): a
   * record of its own (named by the response's); its cost is counted to the agent run with the call's.
   */
  #toolCallRecord(parent: CallRecordInput, tool: ToolModelCall): CallRecordInput {
    const requested = requestedToolModel(this.spec.api, this.body);
    const eventId = namedEventId(`tool-model-call:${parent.event_id}`);
    const input = toolModelCallInput(parent, tool, requested, eventId);
    for (const f of LATER_FIELDS) if (input[f] === 0) delete input[f];
    return input as CallRecordInput;
  }

  #requestedModel(): string | null {
    return fieldText(this.body.model);
  }

  /** The model the call runs on, before its reply names one: the one requested, else the API's default. */
  #model(): string | null {
    return this.#requestedModel() ?? this.spec.defaultModel?.(this.body) ?? null;
  }
}
