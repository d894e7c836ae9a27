import { setTimeout as sleep } from "node:timers/promises";
import {
  applyRealtimeSettings,
  type CallRecord,
  type ExtractedUsage,
  extractFromResponse,
  fieldText,
  type PriceResult,
  type PricingEngine,
  type RealtimeModels,
  realtimeResponseError,
  realtimeTranscriptionUsage,
  totalTokens,
  uuidv7,
} from "@tollgate/core";
import type { SpendGuard, Ticket } from "../limits/guard.js";
import { callFacts } from "./call-facts.js";
import { GatewayError } from "./gateway-error.js";
import type { Attribution } from "./headers.js";
import type { GatewayMetrics } from "./metrics.js";
import type { Recorder } from "./recorder.js";

/** Who a Realtime session is recorded for, and which model it asked for. */
export interface RealtimeCaller {
  provider: string;
  workspaceId: string;
  keyId: string | null;
  attribution: Attribution;
  depth: number;
  /** The `model` of the connection's URL (null for a sideband connection to a call). */
  modelRequested: string | null;
}

export interface MeterDeps {
  engine: PricingEngine;
  recorder: Recorder;
  guard: SpendGuard;
  metrics: GatewayMetrics;
}

/** What the meter does to the session: tell the upstream and the client (each message one JSON event). */
export interface SessionSides {
  toUpstream(event: Record<string, unknown>): void;
  toClient(event: Record<string, unknown>): void;
}

/** The server events the meter reads; every other one (audio deltas: most of them) is passed by unread. */
const METERED =
  /^\{\s*"type"\s*:\s*"(session\.created|session\.updated|response\.created|response\.done|conversation\.item\.input_audio_transcription\.completed)"/;
/** The client events it reads: the session's settings (the transcription model they name). */
const CLIENT_METERED = /^\{\s*"type"\s*:\s*"(session\.update)"/;
const NO_BODY = Buffer.alloc(0);

interface Pending {
  start: number;
  /** Its admission: the ticket, or null when a limit refused it (it was cancelled). */
  admitted: Promise<Ticket | null>;
}

/**
 * The cost of one OpenAI Realtime session, read from the server events relayed to its client: each
 * response is a call, admitted against the limits when the server announces it (`response.created`;
 * over a limit, it is cancelled upstream and the client told with an `error` event) and recorded with
 * its usage and exact cost when it is done (`response.done`). The session names the model.
 */
export class RealtimeMeter {
  /** The session's model and its transcription model, as its settings have named them. */
  readonly #models: RealtimeModels;
  readonly #pending = new Map<string, Pending>();
  /** Records being written (each awaits its admission), for the session's end to wait on. */
  readonly #writing = new Set<Promise<void>>();

  constructor(
    private readonly deps: MeterDeps,
    private readonly caller: RealtimeCaller,
    private readonly sides: SessionSides,
  ) {
    this.#models = { model: caller.modelRequested, transcriber: null };
  }

  /**
   * Before the session opens: the limits that apply to its caller must let a call through (a killed agent
   * run, a budget spent already). Nothing is held: each response is admitted in turn. The session is no
   * LLM call of its run (its responses are): the run is only checked for a kill, and the budgets are
   * asked without it (a run's admission counts a call).
   */
  async admitSession(): Promise<void> {
    const ctx = this.#context(uuidv7());
    const run = await this.deps.guard.admit({ ...ctx, api: null, startsWork: true });
    if (!run.ok) throw GatewayError.fromLimit(run.error);
    const admission = await this.deps.guard.admit({ ...ctx, facts: { ...ctx.facts, agent_run_id: null } });
    if (!admission.ok) throw GatewayError.fromLimit(admission.error);
    await this.deps.guard.settle(admission.ticket, {
      cost: 0n,
      tokens: 0,
      toolCalls: 0,
      eventId: null,
      tsStart: Date.now(),
    });
  }

  /** A text message from the client, before it goes on to the upstream. */
  onClientText(data: Buffer): void {
    const event = eventOf(data, CLIENT_METERED);
    // What the client asks for, until the server's session.updated says what it got.
    if (event) applyRealtimeSettings(this.#models, event.session, false);
  }

  /** A text message from the upstream, before it goes on to the client. */
  onServerText(data: Buffer): void {
    const event = eventOf(data, METERED);
    if (!event) return;
    const kind = event.type;
    if (kind === "session.created" || kind === "session.updated") {
      applyRealtimeSettings(this.#models, event.session, true);
      return;
    }
    if (kind === "conversation.item.input_audio_transcription.completed") {
      this.#transcribed(event);
      return;
    }
    const response = event.response as Record<string, unknown> | null | undefined;
    const id = fieldText(response?.id);
    if (!response || !id) return;
    if (kind === "response.created") {
      if (!this.#pending.has(id)) this.#pending.set(id, { start: Date.now(), admitted: this.#admit(id) });
      return;
    }
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    this.#done(response, id, pending);
  }

  /**
   * An input audio transcription done: a call of the transcription model, billed by its usage (tokens, or
   * whisper-1's seconds of audio, priced by the hour). Not admitted (the
   * server runs it on its own); counted against the limits once recorded.
   */
  #transcribed(event: Record<string, unknown>): void {
    const item = fieldText(event.item_id) ?? uuidv7();
    this.#write(item, undefined, {
      usage: realtimeTranscriptionUsage(event),
      status: "ok",
      errorType: null,
      model: this.#models.transcriber ?? "unknown",
    });
  }

  /**
   * The client has left while responses were under way: they are cancelled upstream, whose
   * `response.done` then says what each cost; resolves once none is left (or after `waitMs`).
   */
  async cancelPending(waitMs: number): Promise<void> {
    const cancelled = new Set<string>();
    // Timed on the monotonic clock: a step of the wall clock neither cuts the wait short nor stretches it.
    const until = performance.now() + waitMs;
    // Again at each look: a response announced meanwhile (its response.created was on its way) too.
    while (this.#pending.size && performance.now() < until) {
      for (const id of this.#pending.keys())
        if (!cancelled.has(id)) {
          cancelled.add(id);
          this.sides.toUpstream({ type: "response.cancel", response_id: id });
        }
      await sleep(20);
    }
  }

  /** The session has ended: responses still under way are recorded as cut off. Resolves once all are written. */
  async end(): Promise<void> {
    for (const [id, pending] of this.#pending) this.#cutOff(id, pending);
    this.#pending.clear();
    while (this.#writing.size) await Promise.all(this.#writing);
  }

  #track(writing: Promise<void>): void {
    const tracked = writing.finally(() => this.#writing.delete(tracked));
    this.#writing.add(tracked);
  }

  async #admit(responseId: string): Promise<Ticket | null> {
    const admission = await this.deps.guard.admit(this.#context(responseId));
    if (admission.ok) return admission.ticket;
    // Over a limit: the response is cancelled; what it cost until then is recorded and counted all the same.
    const err = GatewayError.fromLimit(admission.error);
    this.sides.toUpstream({ type: "response.cancel", response_id: responseId });
    this.sides.toClient({
      type: "error",
      event_id: `event_tollgate_${uuidv7()}`,
      error: { type: err.type, code: err.code, message: err.message, param: null, event_id: null },
    });
    return null;
  }

  #done(response: Record<string, unknown>, id: string, pending: Pending | undefined): void {
    let usage: ExtractedUsage | null = null;
    let usageError: string | null = null;
    try {
      usage = extractFromResponse("openai.realtime", response);
    } catch (e) {
      usageError = (e as Error).message;
    }
    const errorType = realtimeResponseError(response);
    this.#write(id, pending, {
      usage,
      status: errorType === null ? "ok" : "error",
      errorType: usageError && !errorType ? "usage_unreadable" : errorType,
    });
  }

  /** Cut off with no usage (the upstream's connection dropped): its cost is not known, its worst case is held. */
  #cutOff(id: string, pending: Pending): void {
    this.#write(id, pending, { usage: null, status: "error", errorType: "session_closed" });
  }

  /**
   * The session did not open (the upstream refused it, or could not be reached): one failed call, not billed;
   * `eventId` where the refusal's answer names the record already. Returns the record, for the gateway's own
   * answer to name it.
   */
  refused(httpStatus: number | null, errorType: string, eventId: string = uuidv7()): CallRecord | null {
    return this.#write(uuidv7(), undefined, { usage: null, status: "error", errorType, httpStatus, eventId });
  }

  /** Records one call now; its charge against the limits follows (once admitted), and end() waits for it. */
  #write(
    responseId: string,
    pending: Pending | undefined,
    o: {
      usage: ExtractedUsage | null;
      status: "ok" | "error";
      errorType: string | null;
      httpStatus?: number | null;
      /** Another model than the session's (its transcription's). */
      model?: string;
      /** The record's event id, where its answer named it already (a refused handshake's). */
      eventId?: string;
    },
  ): CallRecord | null {
    const start = pending?.start ?? Date.now();
    const model = o.model ?? o.usage?.model ?? this.#models.model ?? "unknown";
    const price = o.usage ? this.#price(model, o.usage, start) : null;
    const input: Record<string, unknown> = {
      event_id: o.eventId ?? uuidv7(),
      ts_start: start,
      ts_end: Date.now(),
      kind: "llm",
      provider: this.caller.provider,
      api: "openai.realtime",
      // A transcription asked for its own model (the session's settings), as the SDK records it.
      model_requested: o.model ?? this.caller.modelRequested,
      model,
      stream: true,
      status: o.status,
      http_status: o.httpStatus ?? null,
      error_type: o.errorType,
      attempt: 1,
      request_id: responseId,
    };
    Object.assign(input, o.usage?.usage);
    input.usage_raw = o.usage?.usage_raw ?? null;
    Object.assign(input, this.caller.attribution);
    input.key_id = this.caller.keyId;
    const recorded = this.deps.recorder.record(input, this.caller.workspaceId, price ?? undefined);
    const rec = recorded?.record ?? null;
    this.#track(
      (async () => {
        const ticket = pending ? await pending.admitted.catch(() => null) : null;
        await this.#charge(ticket, rec, start);
        if (rec) this.deps.metrics.recordedCost.inc(Number(rec.cost_nanousd));
        else this.deps.metrics.upstreamErrors.inc({ family: "openai", kind: "record_failed" });
      })(),
    );
    return rec;
  }

  /**
   * Counts a response against the limits: its admission's ticket settled with its cost (its worst case
   * when not known), or, refused or never announced, its record observed as a call recorded elsewhere is.
   */
  async #charge(ticket: Ticket | null, rec: CallRecord | null, start: number): Promise<void> {
    if (ticket)
      return this.deps.guard.settle(ticket, {
        cost: rec?.priced ? rec.cost_nanousd : null,
        tokens: rec ? totalTokens(rec) : 0,
        toolCalls: 0,
        eventId: rec?.event_id ?? null,
        tsStart: rec?.ts_start ?? start,
      });
    if (rec) await this.deps.guard.observe([rec]);
  }

  #price(model: string, usage: ExtractedUsage, at: number): PriceResult | null {
    try {
      return this.deps.engine.price({ provider: this.caller.provider, model, usage: usage.usage, at });
    } catch {
      return null; // inconsistent usage: the record says so
    }
  }

  #context(requestId: string) {
    const model = this.#models.model ?? "unknown";
    return {
      workspace: this.caller.workspaceId,
      facts: callFacts(this.caller.attribution, model, this.caller.provider, this.caller.keyId),
      api: "openai.realtime" as const,
      provider: this.caller.provider,
      model,
      body: null,
      raw: NO_BODY,
      requestId,
      retry: false,
      depth: this.caller.depth,
    };
  }
}

/** The event a message holds when its type is one `wanted` names (read from its head first: cheap). */
function eventOf(data: Buffer, wanted: RegExp): (Record<string, unknown> & { type: string }) | null {
  const head = wanted.exec(data.toString("utf8", 0, Math.min(data.length, 80)));
  if (!head) return null;
  try {
    const event = JSON.parse(data.toString("utf8")) as Record<string, unknown> & { type: string };
    return event.type === head[1] ? event : null;
  } catch {
    return null; // not ours to judge: it goes on as it came
  }
}
