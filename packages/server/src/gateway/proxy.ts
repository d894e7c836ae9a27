import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ATTRIBUTION_FIELDS,
  attributionErrors,
  BackgroundFollower,
  type BackgroundResponse,
  type BatchResult,
  BatchResultsReader,
  backgroundResponse,
  billsCharacters,
  blankCallInput,
  type CallRecord,
  createSseUsageExtractor,
  defaultImageModel,
  type ExtractedUsage,
  estimateCutShortUsage,
  extractFromResponse,
  FinalResponseReader,
  FOLLOW_GIVE_UP_MS,
  FOLLOW_MAX_MS,
  type FollowOutcome,
  fieldText,
  INPUT_LIMITS,
  isFinished,
  isPending,
  mayRefuseStreamOptions,
  PRICE_REF_NO_USAGE,
  type PriceResult,
  type PricingEngine,
  pollOutcomeOf,
  Recent,
  type RunHold,
  refusesStreamOptions,
  requestedToolModel,
  STREAM_OPTIONS_REFUSED,
  StreamOptionsRefusals,
  type StreamShown,
  servedAsOf,
  speechUsage,
  type ToolCallParent,
  type ToolModelCall,
  toolCallModel,
  toolModelCallInput,
  totalTokens,
  transcriptionBilling,
  uuidv7,
} from "@tollgate/core";
import { type Dispatcher, EnvHttpProxyAgent, Pool } from "undici";
import { GATEWAY_KEY_ROLES, KeyLookupFailed, type KeyResolver, type Principal } from "../auth/keys.js";
import { COST_UNKNOWN, costUsd, recordCostUsd } from "../cost-usd.js";
import { namedEventId, responseEventId } from "../event-ids.js";
import {
  type Admission,
  type CallOutcome,
  heldBack,
  isBareTicket,
  type SpendGuard,
  type Ticket,
} from "../limits/guard.js";
import type { EventStore } from "../store/types.js";
import { withTimeout } from "../with-timeout.js";
import { type ResponseRead, responseIdOf } from "./background.js";
import {
  type BatchRecords,
  type BatchResultsSource,
  batchResultsSource,
  pointResultsUrlsAt,
} from "./batch-results.js";
import { callFacts } from "./call-facts.js";
import { ClientPace, type ClientWatch, NO_CLIENT, watchClient } from "./client-watch.js";
import { type GatewayConfig, MAX_HEADER_BYTES, MAX_RETRIES } from "./config.js";
import {
  brokenUpstreamKind,
  cutShortReason,
  errorTypeOf,
  GatewayError,
  isConnectTimeout,
  isTimeout,
  sendError,
  upstreamFailure,
  writeHead,
} from "./gateway-error.js";
import { type Attribution, headerOfField, headerValue, replyHeaders, splitHeaders } from "./headers.js";
import { type LiveReply, requestLive } from "./live-reply.js";
import type { GatewayMetrics } from "./metrics.js";
import { NotSent } from "./queue-wait.js";
import type { Recorder } from "./recorder.js";
import { countEvents, countToolCalls, replyJson, streamDecoder } from "./reply-reading.js";
import {
  ClientLeft,
  decodeBody,
  drainBody,
  EMPTY_BODY,
  isBigUpload,
  MAX_IMAGE_REQUEST_BYTES,
  MAX_REQUEST_BYTES,
  parseModelRequest,
  readBody,
  usageNotAsked,
  withIncludeUsage,
} from "./request-body.js";
import { backoffMs, retryWaitMs } from "./retry.js";
import { classify, type GatewayRoute } from "./routes.js";
import { type Place, RunLines } from "./run-lines.js";
import { answerOn, isRealtime, SocketRelay } from "./socket-relay.js";
import { StoreLookups } from "./store-lookups.js";
import { streamOptionsUpstreamOf } from "./stream-options-refusals.js";
import { UsageChunkStripper } from "./strip-usage.js";
import { ReplyFailed, ReplyTooLarge, requestWhole, type WholeReply } from "./whole-reply.js";

export interface GatewayDeps {
  config: GatewayConfig;
  engine: PricingEngine;
  recorder: Recorder;
  keys: KeyResolver;
  metrics: GatewayMetrics;
  guard: SpendGuard;
  /** Where a finished background response's record may already be (another replica's, its stream's). */
  store: Pick<EventStore, "query" | "storedIds">;
  /** Stores the calls of batch results downloaded through the gateway. */
  batches: BatchRecords;
  /** What an operator should know (the CLI's pino logger). */
  log: (msg: string) => void;
}

/** Whom a background response is recorded for: the workspace and attribution of its submission. */
interface Owner {
  workspaceId: string;
  attribution: Attribution;
  keyId: string | null;
  /**
   * The submission's admission, held until the response is found finished (or the hold expires): while it
   * runs, it counts against its budgets as any call in flight does.
   */
  ticket?: Ticket | null;
  /** The model the submission's hosted tool named (its tool call's model_requested), if any. */
  toolModel?: string | null;
  /** A background stream still relayed: it settles its own hold as it ends, when no poll here did. */
  relaying?: boolean;
  /** Pushed out by newer submissions (Gateway.#forget): no poll here finds it any more. */
  forgotten?: boolean;
}

/** How much of an error answer is read for its error type. */
const ERROR_HEAD_BYTES = 4096;
const MAX_DEPTH = 10_000;

/** Where an upstream base URL's requests go: its own pool, or the egress proxy agent shared by all. */
interface Upstream {
  dispatcher: Dispatcher;
  origin: string;
  /** The base URL's path (e.g. /v1), put before each call's path. */
  prefix: string;
}

/** Everything known about one client call while it is proxied. */
interface Call {
  route: GatewayRoute;
  /** Upstream timeout for the headers and between body chunks: x-tollgate-timeout-ms, else the config's. */
  timeoutMs: number;
  provider: string;
  base: string;
  extraHeaders: Record<string, string>;
  workspaceId: string;
  keyId: string | null;
  attribution: Attribution;
  /** Depth in the agent run's span tree (x-tollgate-span-depth). */
  depth: number;
  forward: Record<string, string>;
  body: Buffer;
  /**
   * The body as its client sent it, when `body` has the stream_options the gateway added and the client sent
   * none (else null): only then is an upstream's refusal of stream_options the gateway's doing, not about
   * the client's own (a mistake in them, which must not make the gateway stop asking that upstream for usage).
   */
  clientBody: Buffer | null;
  /** A big pass-through upload, sent upstream as it comes (`body` is then empty). */
  upload: IncomingMessage | null;
  parsed: Record<string, unknown> | null;
  /** Set when `parsed` was read without the request's media (RawBody.skimMark). */
  skimMark?: string;
  /** The request's `model`, as a record field takes it (fieldText). */
  modelRequested: string | null;
  /**
   * The model the call runs on, before the reply names it: the one requested, else the provider's documented
   * default (an image request that names none; its reply names none either).
   */
  model: string | null;
  stream: boolean;
  /** The gateway added include_usage to an OpenAI stream: strip it again on the way back. */
  injectedUsage: boolean;
  /** The last attempt whose record was written (0: none yet). */
  recordedAttempt: number;
  requestId: string;
  started: number;
  /** Its place in the order calls came to this gateway (RunLines.arrival): its run's line goes by it. */
  arrival: number;
  method: string;
}

/**
 * One attempt of a call upstream: its number (1-based), its client's try it is (1-based: the gateway's own
 * re-send of a try is the same try), when it started, and its admission's ticket.
 */
interface Attempt {
  call: Call;
  n: number;
  clientTry: number;
  start: number;
  ticket: Ticket | null;
}

/** A failed attempt that is retried: the outcome it is recorded with, and the wait before its retry. */
interface Retried {
  failed: Outcome;
  wait: number;
  /** The gateway's own re-send (#usageRefused): the same try of its client's again, no retry of theirs. */
  resend?: true;
}

/** How one upstream attempt ended, as recorded. */
interface Outcome {
  status: "ok" | "error";
  http_status: number | null;
  error_type: string | null;
  usage?: ExtractedUsage | null;
  estimated?: boolean;
  event_id?: string;
  ttft_ms?: number | null;
  /** When it ended (default: now); null when not known (a background response found finished by a poll). */
  ts_end?: number | null;
  /** The price quoted to the client: the record stores exactly this. */
  price?: PriceResult | null;
  /** Tool calls the model asked for (counted against agent-run ceilings). */
  toolCalls?: number;
  /** Recorded as this kind instead of the route's (a background response's submission: other). */
  kind?: GatewayRoute["kind"];
  /** Recorded with this request id instead of the call's (a background response's stream: its response id). */
  request_id?: string;
  /** The attempt's admission is settled later, not with this record (a background response's submission). */
  keepTicket?: boolean;
  /** The model the request's hosted tool named, when the call's body is not the request's (a poll). */
  toolModel?: string | null;
  /** Its record may be made again, under the same event id (CallOutcome.recurs): a background response's. */
  recurs?: boolean;
}

/**
 * The drop-in base URL: OpenAI- and Anthropic-compatible endpoints proxied to the configured upstreams
 * with the client's own provider key, byte-for-byte replies (streams chunk by chunk), and one record per
 * upstream attempt with exact usage and cost. Recording never sits between the upstream and the client.
 */
export class Gateway {
  readonly #upstreams = new Map<string, Upstream>();
  /** Upstreams that refused the stream_options the gateway adds: it adds none there any more. */
  readonly #streamOptionsRefused = new StreamOptionsRefusals();
  /** Set when upstream calls leave through a proxy (HTTPS_PROXY …): it also keeps NO_PROXY hosts' pools. */
  readonly #egress: EnvHttpProxyAgent | null;
  readonly #poolOptions: Pool.Options;
  readonly #connectTimeoutMs: number;
  /** Background responses submitted through this process, and the ones it has found finished. */
  readonly #submitted: Recent<Owner>;
  readonly #finished = new Recent<true>();
  /** This process's own polls of them, for those no client polls (BackgroundFollower). */
  readonly #follower: BackgroundFollower;
  /** Whether it polls them itself (TOLLGATE_BACKGROUND_FOLLOW_MS above 0): else no poll may come. */
  get #follows(): boolean {
    return this.deps.config.backgroundFollowMs > 0;
  }
  /** WebSocket sessions (OpenAI Realtime): relayed, and metered. */
  readonly #sockets: SocketRelay;
  /** Calls waiting for their agent run's calls in flight to settle (see #waitForRun). */
  readonly #runLines = new RunLines(RUN_HOLD_POLL_MS);
  /** Whether finished background responses are recorded already, asked of the store (#recordsOfResponse). */
  readonly #lookups: StoreLookups;

  constructor(private readonly deps: GatewayDeps) {
    this.#sockets = new SocketRelay(deps, deps.config);
    this.#lookups = new StoreLookups(MAX_LOOKUPS, deps.config.storeLookupMs ?? LOOKUP_TIMEOUT_MS);
    this.#submitted = new Recent<Owner>({
      max: deps.config.backgroundRemembered,
      forgotten: (owner) => this.#forget(owner),
    });
    deps.guard.onRunReleased((workspace, runId) => this.#runLines.released(workspace, runId));
    this.#follower = new BackgroundFollower({
      firstMs: deps.config.backgroundFollowMs,
      maxMs: FOLLOW_MAX_MS,
      giveUpMs: FOLLOW_GIVE_UP_MS,
    });
    // Connecting (TCP and TLS) is bounded by the upstream timeout too, within undici's own 10 s.
    this.#connectTimeoutMs = Math.min(deps.config.timeoutMs, CONNECT_TIMEOUT_MS);
    this.#poolOptions = {
      connections: deps.config.upstreamConnections,
      pipelining: 1,
      connect: { timeout: this.#connectTimeoutMs },
      maxHeaderSize: MAX_HEADER_BYTES,
    };
    const p = deps.config.egressProxy;
    // Through the proxy the pool's connect option is not used: reaching the proxy, its answer to CONNECT
    // and the TLS handshake through the tunnel are bounded one by one.
    const bound = { timeout: this.#connectTimeoutMs };
    this.#egress = p
      ? new EnvHttpProxyAgent({
          ...this.#poolOptions,
          proxyTls: bound,
          requestTls: bound,
          clientFactory: (origin, opts) =>
            new Pool(origin, { ...opts, headersTimeout: this.#connectTimeoutMs }),
          httpProxy: p.httpProxy ?? undefined,
          httpsProxy: p.httpsProxy ?? undefined,
          noProxy: p.noProxy ?? "", // not read from the environment again: the config is the source
        })
      : null;
  }

  /** Takes the request when it is a gateway path; returns false to let the API handle it. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const route = classify(req.url ?? "/", req.headers, req.method);
    if (!route) return false;
    const timing: Timing = { started: Date.now(), stream: false };
    const serving = this.#serve(req, res, route, timing).catch(async (e) => {
      if (e instanceof ClientLeft) {
        res.destroy(); // not a gateway error (no 502 in /metrics): the client's own leaving
        return this.#observe(route, timing, CLIENT_CLOSED_REQUEST);
      }
      const err = e instanceof GatewayError ? e : GatewayError.internal(e);
      if (!res.headersSent) {
        await drainBody(req); // a body over the limit, say: kept alive if it comes whole, else closed
        sendError(res, route, err);
      } else res.destroy();
      this.#observe(route, timing, err.status);
    });
    this.#serving.add(serving);
    void serving.finally(() => this.#serving.delete(serving));
    return true;
  }

  /** The requests being served (their calls recorded as they end), for close() to wait on. */
  readonly #serving = new Set<Promise<void>>();

  /**
   * Takes a WebSocket upgrade request when it is a gateway path (an OpenAI Realtime session, metered, or
   * any other /v1 WebSocket, relayed as it is); returns false to let the server refuse it.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const route = classify(req.url ?? "/", req.headers, "GET");
    if (!route) return false;
    const timing: Timing = { started: Date.now(), stream: true };
    this.#openSocket(req, socket, head, route)
      .then((status) => this.#observe(route, timing, status))
      .catch((e) => {
        const err = e instanceof GatewayError ? e : GatewayError.internal(e);
        answerOn(req, socket, (res) => sendError(res, route, err));
        this.#observe(route, timing, err.status);
      });
    return true;
  }

  async #openSocket(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    route: GatewayRoute,
  ): Promise<number> {
    const caller = await this.#caller(req, route);
    // A metered session's model. Named twice, the session could be held as one model and run on the other
    // (the upstream's choice); another WebSocket is relayed as it is.
    const query = new URLSearchParams(route.upstreamPath.split("?")[1] ?? "");
    const models = isRealtime(route) ? query.getAll("model") : [];
    if (models.length > 1) throw GatewayError.repeated("query parameter", "model");
    return this.#sockets.relay(req, socket, head, {
      ...caller,
      route,
      modelRequested: fieldText(models[0]),
    });
  }

  /** Ends the WebSocket sessions (1001), their responses accounted for: at shutdown, before the server closes. */
  closeSockets(): Promise<void> {
    return this.#sockets.close();
  }

  /**
   * At shutdown, before the calls in flight are let finish: a call waiting on its run's calls in flight
   * (or about to) gets its 429 (Retry-After: 1) at once, for its client to retry elsewhere or later,
   * rather than go upstream while the gateway stops, or hold the stop until its connection is dropped.
   */
  endWaits(): void {
    this.#runLines.close();
  }

  async close(): Promise<void> {
    this.endWaits();
    await this.#sockets.close();
    this.#follower.close();
    // Waits for the upstream requests in flight (a whole reply runs on when its client has gone): hurry()
    // cuts them short. Destroyed, a dispatcher's close is answered at once (its requests have failed).
    await Promise.all([...this.#dispatchers()].map((d) => d.close().catch(() => {})));
    // Their upstream requests over, the calls are recorded before the recorder is flushed (cut short by
    // hurry(), a call's record is made as its request fails, a few turns after).
    await withTimeout(Promise.all(this.#serving), SHUTDOWN_WAIT_MS, "calls recorded").catch(() => {});
    // What was read reaches the recorder (or the store) before they close: finished background responses
    // (a claimed one not recorded would be lost to every replica until its claim ends), batch results.
    await Promise.all(this.#finishingNow);
    await this.deps.batches.settled(SHUTDOWN_WAIT_MS);
  }

  /**
   * Cuts short the upstream requests still in flight (a second signal at shutdown): each fails as a broken
   * connection would, and is recorded so (as billed, estimated, when it had gone out), rather than holding
   * close() until its upstream answers (a model call's whole reply, up to the upstream timeout).
   */
  hurry(): void {
    const why = new CutAtShutdown();
    for (const d of this.#dispatchers()) d.destroy(why).catch(() => {});
  }

  #dispatchers(): Set<Dispatcher> {
    const dispatchers = new Set<Dispatcher>([...this.#upstreams.values()].map((u) => u.dispatcher));
    if (this.#egress) dispatchers.add(this.#egress);
    return dispatchers;
  }

  /** Finished background responses being recorded (a store lookup and a claim each), for close() to wait on. */
  readonly #finishingNow = new Set<Promise<void>>();

  #finishing(recording: Promise<void>): void {
    const tracked = recording.catch(() => {}).finally(() => this.#finishingNow.delete(tracked));
    this.#finishingNow.add(tracked);
  }

  async #serve(
    req: IncomingMessage,
    res: ServerResponse,
    route: GatewayRoute,
    timing: Timing,
  ): Promise<void> {
    const arrival = this.#runLines.arrival(); // as it came: before anything is awaited
    const caller = await this.#caller(req, route);
    const upload = route.api === null && isBigUpload(req) ? req : null;
    const max = route.api === "openai.images" ? MAX_IMAGE_REQUEST_BYTES : MAX_REQUEST_BYTES;
    const sent = upload ? EMPTY_BODY : await readBody(req, max);
    const encoding = route.api === null ? undefined : req.headers["content-encoding"];
    const body = encoding ? await decodeBody(sent, encoding, max) : sent;
    if (body !== sent) delete caller.forward["content-encoding"]; // it goes upstream decoded
    const request = route.api ? parseModelRequest(body, req.headers["content-type"], route.api) : null;
    const parsed = request?.fields ?? null;
    const modelRequested = fieldText(parsed?.model);
    // Speech always streams: its audio as it is made, or its events (`stream_format: "sse"`).
    const stream = parsed?.stream === true || route.api === "openai.speech";
    timing.stream = stream;
    const injectedUsage =
      stream &&
      (route.api === "openai.chat" || route.api === "openai.completions") &&
      usageNotAsked(parsed?.stream_options) &&
      !this.#streamOptionsRefused.has(streamOptionsUpstreamOf(caller.base, route.upstreamPath));
    const call: Call = {
      route,
      provider: caller.provider,
      base: caller.base,
      extraHeaders: caller.extraHeaders,
      workspaceId: caller.workspaceId,
      keyId: caller.keyId,
      attribution: caller.attribution,
      depth: caller.depth,
      forward: caller.forward,
      body: injectedUsage && parsed ? withIncludeUsage(body, parsed) : body,
      clientBody: injectedUsage && parsed?.stream_options == null ? body : null,
      upload,
      parsed,
      skimMark: request?.skimMark,
      modelRequested,
      model: modelRequested ?? defaultModelOf(route, parsed),
      stream,
      injectedUsage,
      recordedAttempt: 0,
      requestId: uuidv7(),
      started: timing.started,
      arrival,
      timeoutMs: caller.timeoutMs,
      method: req.method ?? "POST",
    };
    // A client that reads a background response itself: the gateway's own poll of it waits its turn.
    const read = route.poll || route.resumed ? responseIdOf(route.upstreamPath) : null;
    if (read !== null) this.#follower.seen(read);
    const asked = intHeader(caller.control, "retries", 0, MAX_RETRIES, this.deps.config.retries);
    const retries = upload ? 0 : asked;
    // Watched from here on (the client may leave before the upstream has answered): a relayed reply (a
    // stream, or any pass-through one), which is cancelled when its client goes away, and any call that
    // may be retried, whose retries then stop. A model call's reply already asked for runs to its end: its
    // record then has the exact cost the provider bills.
    const relayed = isRelayed(call);
    const client = relayed || retries > 0 ? watchClient(res) : null;
    const cancel = relayed ? client : null;
    try {
      await this.#attempts(call, retries, res, client, cancel);
    } finally {
      client?.stop();
    }
  }

  async #attempts(
    call: Call,
    retries: number,
    res: ServerResponse,
    client: ClientWatch | null,
    cancel: ClientWatch | null,
  ) {
    const route = call.route;
    // The call's place in its run's line, kept while a retry of it waits out its backoff.
    let kept: Place | null = null;
    let clientTry = 1;
    let resend = false;
    try {
      for (let attempt = 1; ; attempt++) {
        const releases = this.#runLines.releases;
        const retry = clientTry > 1 && !resend; // a re-send's try was counted as it went the first time
        let admission = await this.#admit(call, retry, this.#roomToLeave(call));
        let left = false;
        if (!admission.ok && admission.inFlight)
          ({ admission, left } = await this.#waitForRun(call, retry, admission, releases, res, client, kept));
        // Admitted (in flight now), refused or gone: the place its backoff kept is no longer needed.
        kept?.leave();
        kept = null;
        if (!admission.ok) {
          if (left) return this.#observe(route, call, CLIENT_CLOSED_REQUEST); // nobody to answer
          throw GatewayError.fromLimit(admission.error);
        }
        const ticket = admission.ticket;
        if (client?.gone || left) {
          // Left while the call was being admitted: nothing went upstream, so nothing is billed or recorded.
          return this.#unsent(call, ticket);
        }
        const at: Attempt = { call, n: attempt, clientTry, start: Date.now(), ticket };
        const up = await this.#sendAttempt(at, retries, res, cancel);
        if (up === "handled") return;
        if ("failed" in up) {
          // A run's call keeps its place in its run's line through the backoff, taken before the record's
          // settle lets the failed attempt's holds go: the room they leave is for its retry, not for a call
          // that came after it.
          kept = this.#placeKept(call, ticket);
          this.#record(at, up.failed);
          resend = up.resend === true;
          if (!resend) clientTry++;
          if (await waitForRetry(up.wait, client, ticket)) continue;
          return this.#observe(route, call, CLIENT_CLOSED_REQUEST); // nobody left to retry for
        }
        const isSse = (headerValue(up.headers, "content-type") ?? "").includes("text/event-stream");
        try {
          // Speech audio (not events) is relayed as a download is, its usage known from the request.
          const relayAsIs = route.api === null || (route.api === "openai.speech" && !isSse);
          if (!isWhole(up) && relayAsIs) await this.#relayPassThrough(at, up, res, cancel!);
          else if (!isWhole(up) && isSse && up.statusCode < 300)
            await this.#relayStream(at, up, res, cancel!);
          else await this.#relayBody(at, up, res, cancel);
        } catch (e) {
          // A fault of the gateway's own inside the relay: an attempt it cut off before recording is still
          // recorded (which settles its reservation), and a reply nobody reads any more is not left running.
          if (!isWhole(up)) up.body.cancel(e as Error);
          if (call.recordedAttempt === attempt) throw e;
          // Answered upstream, a model call is billed by its provider all the same: estimated, as a cut-off stream.
          const rec = this.#record(at, {
            status: "error",
            http_status: up.statusCode,
            error_type: "gateway_error",
            ...unseenUsage(this.deps.engine, call, up.statusCode),
          });
          throw GatewayError.internal(e).withRecord(rec);
        }
        return;
      }
    } finally {
      kept?.leave(); // a retry that gave up, or whose client left: the line goes on without it
    }
  }

  /**
   * The place in its run's line of a call whose retry waits out its backoff: where its call came, ahead of
   * the calls that came after it (RunLines), holding what its failed attempt held. Null for a call of no run.
   */
  #placeKept(call: Call, failed: Ticket | null): Place | null {
    const runId = call.attribution.agent_run_id;
    if (!runId) return null;
    const hold = failed?.run?.hold ?? null;
    return this.#runLines.join(call.workspaceId, runId, this.#runLines.releases, call.arrival, hold);
  }

  /** The room a call of a run must leave for the first in its run's line, if that one came before it. */
  #roomToLeave(call: Call): RunHold | undefined {
    const runId = call.attribution.agent_run_id;
    return (runId && this.#runLines.toLeave(call.workspaceId, runId, call.arrival)) || undefined;
  }

  /**
   * An answer that is retried (its status, retries left), as Retried; null when it is not. A provider that
   * asks for a longer wait than a gateway holds a request gets no retry: its answer, retry-after included,
   * goes to the client, whose call the wait is.
   */
  async #retriedAnswer(at: Attempt, up: UpstreamReply, retries: number): Promise<Retried | null> {
    const wait = retryWaitMs(up.statusCode, up.headers, at.clientTry, retries);
    if (wait === null) return null;
    const text = (isWhole(up) ? up.body : await up.body.whole().catch(() => EMPTY_BODY)).toString();
    this.deps.metrics.upstreamErrors.inc({ family: at.call.route.family, kind: String(up.statusCode) });
    return {
      failed: { status: "error", http_status: up.statusCode, error_type: errorTypeOf(text, up.statusCode) },
      wait,
    };
  }

  /**
   * Sends one attempt upstream: its reply; Retried when it failed and is retried (its answer's status or a
   * failure to reach the upstream, retries left; not recorded yet); or "handled" (the client left, recorded
   * as such). A failure not retried is thrown as the gateway's answer.
   */
  async #sendAttempt(
    at: Attempt,
    retries: number,
    res: ServerResponse,
    cancel: ClientWatch | null,
  ): Promise<UpstreamReply | Retried | "handled"> {
    const { call, clientTry } = at;
    let up: UpstreamReply;
    try {
      up = isRelayed(call) ? await this.#send(call, cancel?.signal) : await this.#sendWhole(call, res);
    } catch (caught) {
      // Left while the request waited for an upstream connection: as when it left during admission,
      // nothing went upstream, so nothing is billed or recorded.
      if (caught instanceof NotSent) return this.#unsent(call, at.ticket);
      const unanswered = caught instanceof ReplyFailed && caught.statusCode === null;
      // Its client left while the upstream was being reached, which then failed, or a hurried shutdown cut
      // it: recorded as a call its client left (input estimated: the upstream may have had it), or, never
      // started (connecting, waiting for a connection or a tunnel), not sent at all.
      if (cancel?.gone || (unanswered && caught.cause instanceof CutAtShutdown)) {
        if (unanswered && !caught.started) return this.#unsent(call, at.ticket);
        this.#clientGone(at, null);
        return "handled";
      }
      if (caught instanceof ReplyFailed && caught.statusCode !== null) {
        // The answer came, then its body broke off: a retryable one is retried all the same (its body
        // only names the error); any other is the gateway's 502/504.
        const { statusCode, headers } = caught;
        const retried = await this.#retriedAnswer(at, { statusCode, headers, body: EMPTY_BODY }, retries);
        return retried ?? this.#bodyFailed(at, statusCode, caught.cause);
      }
      const e = caught instanceof ReplyFailed ? caught.cause : caught;
      // Nothing reached the upstream unless undici had started the request (not while it connected, or
      // waited for a connection or for the egress proxy's tunnel).
      const started = caught instanceof ReplyFailed && caught.started;
      const timeout = isTimeout(e) || isConnectTimeout(e);
      this.deps.metrics.upstreamErrors.inc({
        family: call.route.family,
        kind: timeout ? "timeout" : "connection",
      });
      // An upstream that had the request and did not answer in time may bill it all the same: its input is
      // estimated, as for a client that left. One never connected to, or never reached (queued), is not.
      const reached = started && isTimeout(e);
      const failed: Outcome = {
        status: "error",
        http_status: null,
        error_type: timeout ? "timeout" : "connection_error",
        ...(reached ? unseenUsage(this.deps.engine, call, null) : {}),
      };
      if (clientTry <= retries) return { failed, wait: backoffMs(clientTry, null)! };
      // Connecting (or the egress proxy's tunnel) timed out: a request undici had not started. One still
      // waiting for a free connection of the gateway's own pool did not answer in time, as before.
      const phase = timeout && caught instanceof ReplyFailed && !started ? "connect" : "answer";
      throw upstreamFailure(e, call.timeoutMs, phase, this.#connectTimeoutMs).withRecord(
        this.#record(at, failed),
      );
    }
    return (await this.#retriedAnswer(at, up, retries)) ?? (await this.#usageRefused(at, up, cancel));
  }

  /**
   * An upstream that knows no stream_options refuses the include_usage the gateway added (Azure OpenAI
   * before api-version 2024-09-01-preview: 400 "Unrecognized request argument supplied: stream_options";
   * a compatible server that forbids unknown fields: 422 "extra_forbidden", as pydantic words it): the call
   * goes again as its client sent it (Retried, at once), whose answer the client gets, as it would have
   * without the gateway; the upstream is remembered, so its later streams go as their clients send them
   * (told once: their records have no usage, unpriced). Any other answer is the attempt's (an error's body
   * read whole, as it is relayed).
   */
  async #usageRefused(
    at: Attempt,
    up: UpstreamReply,
    cancel: ClientWatch | null,
  ): Promise<UpstreamReply | Retried | "handled"> {
    const { call } = at;
    if (call.clientBody === null || !mayRefuseStreamOptions(up.statusCode)) return up;
    let body: Buffer;
    try {
      body = isWhole(up) ? up.body : await up.body.whole();
    } catch (e) {
      // As a relayed error answer whose body broke off (#relayBody).
      if (!cancel?.gone) return this.#bodyFailed(at, up.statusCode, e);
      this.#clientGone(at, up.statusCode);
      return "handled";
    }
    const text = body.toString("utf8", 0, ERROR_HEAD_BYTES);
    if (!refusesStreamOptions(up.statusCode, text))
      return { statusCode: up.statusCode, headers: up.headers, body };
    const upstream = streamOptionsUpstreamOf(call.base, call.route.upstreamPath);
    if (this.#streamOptionsRefused.add(upstream))
      this.deps.log(
        `gateway: upstream ${upstream} refused stream_options (HTTP ${up.statusCode}); its streamed calls go as their clients send them from now on, recorded without usage (unpriced). Azure OpenAI reports a stream's usage from api-version 2024-09-01-preview.`,
      );
    call.body = call.clientBody;
    call.clientBody = null;
    call.injectedUsage = false;
    this.deps.metrics.upstreamErrors.inc({ family: call.route.family, kind: String(up.statusCode) });
    return {
      failed: { status: "error", http_status: up.statusCode, error_type: STREAM_OPTIONS_REFUSED },
      wait: 0,
      resend: true,
    };
  }

  /**
   * A stream's client left before its answer came, and the upstream request was cancelled with it. The
   * provider may still bill the prompt: the call is recorded with its input estimated from the request
   * (which settles its reservation too).
   */
  #clientGone(at: Attempt, httpStatus: number | null): void {
    const { call } = at;
    this.#record(at, {
      status: "error",
      http_status: httpStatus,
      error_type: "client_disconnected",
      ...unseenUsage(this.deps.engine, call, httpStatus),
    });
    this.#observe(call.route, call, CLIENT_CLOSED_REQUEST);
  }

  /**
   * An admitted call whose client left before anything of it went upstream: its reservation is released,
   * nothing charged or recorded (its run does not count it), and it counts as a client that left.
   */
  #unsent(call: Call, ticket: Ticket | null): "handled" {
    void this.deps.guard.settle(ticket, UNSENT);
    this.#observe(call.route, call, CLIENT_CLOSED_REQUEST);
    return "handled";
  }

  /**
   * The upstream's headers came, then its body broke off or stalled: recorded (a success answered is
   * billed: estimated), and answered 504/502.
   */
  #bodyFailed(at: Attempt, httpStatus: number, e: unknown): never {
    const { call } = at;
    if (!(e instanceof ReplyTooLarge)) this.#upstreamBroke(call, brokenUpstreamKind(false, e)); // too large: the gateway's limit
    const rec = this.#record(at, {
      status: "error",
      http_status: httpStatus,
      error_type:
        e instanceof ReplyTooLarge ? "reply_too_large" : isTimeout(e) ? "timeout" : "connection_error",
      ...unseenUsage(this.deps.engine, call, httpStatus),
    });
    throw upstreamFailure(e, call.timeoutMs, "body").withRecord(rec);
  }

  /**
   * Who calls (its key), with what attribution and controls, through which upstream: checked, or refused
   * with a 4xx. What a model call and a WebSocket session both take of their request's headers.
   */
  async #caller(req: IncomingMessage, route: GatewayRoute) {
    const split = splitHeaders(req.headers);
    const principal = await this.#authenticate(split.control.key);
    const refused = attributionErrors(split.attribution as Record<string, unknown>);
    if (refused.length)
      throw new GatewayError(
        400,
        "invalid_request_error",
        refused.map((e) => `${headerOfField(e.field)}: ${e.reason}`).join("; "),
      );
    const { upstreams } = this.deps.config;
    // Own names only: "constructor" (any Object.prototype name) is not a route to the default upstream.
    const named =
      split.control.upstream && Object.hasOwn(upstreams, split.control.upstream)
        ? upstreams[split.control.upstream]
        : undefined;
    if (split.control.upstream && !named)
      throw new GatewayError(
        400,
        "invalid_request_error",
        `unknown x-tollgate-upstream ${JSON.stringify(split.control.upstream)}: ${upstreamChoices(upstreams)}`,
      );
    const { config } = this.deps;
    return {
      control: split.control,
      forward: split.forward,
      provider: named?.provider ?? route.family,
      base: named?.baseUrl ?? (route.family === "anthropic" ? config.anthropicBaseUrl : config.openaiBaseUrl),
      extraHeaders: named?.headers ?? {},
      workspaceId: principal?.workspaceId ?? "default",
      keyId: principal && principal.role !== "root" ? principal.keyId : null,
      // Object.assign, not {...a, ...b}: Node 20's V8 builds a spread followed by more on a slow path (~1 µs).
      attribution: Object.assign({}, principal?.defaults, split.attribution) as Attribution,
      depth: intHeader(split.control, "span-depth", 1, MAX_DEPTH, 1),
      timeoutMs: intHeader(split.control, "timeout-ms", 1, config.maxTimeoutMs, config.timeoutMs),
    };
  }

  async #authenticate(key: string | undefined): Promise<Principal | null> {
    if (!key) {
      if (this.deps.config.requireKey)
        throw new GatewayError(
          401,
          "authentication_error",
          "this gateway requires x-tollgate-key (a gateway key)",
        );
      return null;
    }
    const p = await this.deps.keys.resolve(key).catch((e) => {
      // A key the store cannot be asked about now: the client may try again (503), nothing went upstream.
      if (e instanceof KeyLookupFailed)
        throw new GatewayError(503, "api_error", `x-tollgate-key: ${e.message}`);
      throw e;
    });
    if (!p) throw new GatewayError(401, "authentication_error", "x-tollgate-key is not a valid Tollgate key");
    if (!GATEWAY_KEY_ROLES.has(p.role))
      throw new GatewayError(
        403,
        "permission_error",
        `a ${p.role} key cannot use the gateway; create one with --role gateway`,
      );
    return p;
  }

  /** A streamed or pass-through call: its reply's body is relayed as it comes. */
  #send(call: Call, signal: AbortSignal | undefined): Promise<LiveReply> {
    const up = this.#upstream(call.base);
    return requestLive(up.dispatcher, upstreamRequest(call, up), signal);
  }

  /** Any other model call: its reply is buffered (its cost goes in the reply's headers). */
  #sendWhole(call: Call, res: ServerResponse): Promise<WholeReply> {
    const up = this.#upstream(call.base);
    return requestWhole(up.dispatcher, upstreamRequest(call, up), () => watchClient(res));
  }

  /** One keep-alive pool per upstream origin (or the egress proxy); the base URL is parsed once, not per request. */
  #upstream(base: string): Upstream {
    let up = this.#upstreams.get(base);
    if (!up) {
      const url = new URL(base);
      up = {
        dispatcher: this.#egress ?? new Pool(url.origin, this.#poolOptions),
        origin: url.origin,
        prefix: url.pathname.replace(/\/+$/, ""),
      };
      this.#upstreams.set(base, up);
    }
    return up;
  }

  /** Non-streamed replies (and errors): buffered, so usage and cost go into the reply headers. */
  async #relayBody(at: Attempt, up: UpstreamReply, res: ServerResponse, client: ClientWatch | null) {
    const { call, start: attemptStart, ticket } = at;
    let buf: Buffer;
    if (isWhole(up)) buf = up.body;
    else
      try {
        buf = await up.body.whole();
      } catch (e) {
        // A stream request answered with a whole body (an error, or an upstream that does not stream)
        // whose client left meanwhile: the body was cancelled with it.
        if (client?.gone) return this.#clientGone(at, up.statusCode);
        return this.#bodyFailed(at, up.statusCode, e);
      }
    const ok = up.statusCode < 300;
    const failed = failedStatus(up.statusCode);
    if (failed)
      this.deps.metrics.upstreamErrors.inc({ family: call.route.family, kind: String(up.statusCode) });
    const publicUrl = this.deps.config.publicUrl;
    if (ok && call.route.batches && publicUrl && !headerValue(up.headers, "content-encoding"))
      buf = Buffer.from(pointResultsUrlsAt(buf.toString("utf8"), call.base, `${publicUrl}/v1`));
    let usage: ExtractedUsage | null = null;
    let toolCalls = 0;
    const json =
      ok && (call.route.api || call.route.poll)
        ? replyJson(buf, headerValue(up.headers, "content-encoding"))
        : null;
    const background =
      json && (call.route.api === "openai.responses" || call.route.poll) ? backgroundResponse(json) : null;
    if (json && call.route.api) {
      toolCalls = countToolCalls(json);
      try {
        usage = extractFromResponse(call.route.api, json);
      } catch {
        usage = null; // recorded with zero tokens and the reason below; the client still gets its reply
      }
    }
    // A background response's submission: no usage yet, none missing. Its cost is recorded when a poll
    // finds it finished; the submission itself is recorded as kind=other.
    const submitted =
      usage === null && background !== null && isPending(background) && call.route.api !== null;
    const eventId = uuidv7();
    const headers = replyHeaders(up.headers);
    const length = contentLength(call, up, buf.length);
    if (length !== null) headers["content-length"] = length;
    headers["x-tollgate-event-id"] = eventId;
    const price = this.#quote(call, usage, attemptStart);
    const replyCost = this.#replyCost(
      call,
      usage,
      attemptStart,
      price?.priced ?? false,
      price?.cost.total_nanousd ?? 0n,
    );
    headers["x-tollgate-cost-usd"] = costUsd(
      ok && call.route.api !== null,
      replyCost.priced,
      replyCost.nanos,
    );
    const record = (ended: number) => {
      this.#record(at, {
        status: failed ? "error" : "ok",
        http_status: up.statusCode,
        error_type: failed
          ? errorTypeOf(buf.toString("utf8", 0, ERROR_HEAD_BYTES), up.statusCode)
          : usage || !ok || !call.route.api || submitted
            ? null
            : "usage_unreadable",
        usage,
        event_id: eventId,
        ts_end: ended,
        price,
        toolCalls,
        // The submission and the response's record share its id, as a call's attempts share theirs.
        ...(submitted
          ? { kind: "other" as const, request_id: fieldText(background.id) ?? undefined, keepTicket: true }
          : {}),
      });
      if (submitted) this.#runsOn(call, background.id, { ...ownerOf(call), ticket: heldBy(ticket) });
      if (json && background && call.route.poll && isFinished(background))
        this.#finishing(this.#recordFinished(call, json, background, "poll"));
    };
    // An agent run's next call may reach another gateway the moment this reply arrives: its counts are
    // settled first, so a ceiling this call crosses already stops that one. A reply whose hosted tool made a
    // call of its own (an image, an advisor's consultations) is recorded first: that call is a record of its
    // own, which counts when it is recorded.
    const recordFirst = ticket?.run && !submitted && usage?.tool_model_call ? ticket : null;
    if (recordFirst) {
      record(Date.now());
      await recordFirst.settling;
    } else if (ticket?.run && !submitted)
      await this.deps.guard.settle(ticket, {
        // Answered without usage it can read (a transcription as text): its cost is unknown, not $0.
        cost: ok && call.route.api && !usage ? null : (price?.cost.total_nanousd ?? 0n),
        tokens: usage ? totalTokens(usage.usage) : 0,
        toolCalls,
        eventId,
        tsStart: attemptStart,
      });
    writeHead(res, up.statusCode, headers);
    res.end(buf);
    letGoUnread(res, call.timeoutMs);
    if (!recordFirst) {
      const ended = Date.now();
      // The record (validation included) is built after the reply is on its way: it is not the client's wait.
      setImmediate(() => record(ended));
    }
    this.#observe(call.route, call, up.statusCode);
  }

  /**
   * A pass-through reply (a file download, a batch's results, an Assistants stream) relayed as it comes,
   * at its client's pace: nothing of it is held whole. Recorded unpriced, as kind=other.
   */
  async #relayPassThrough(at: Attempt, up: LiveReply, res: ServerResponse, client: ClientWatch) {
    const { call, start: attemptStart } = at;
    const failed = failedStatus(up.statusCode);
    const eventId = uuidv7();
    const headers = replyHeaders(up.headers);
    const length = contentLength(call, up, null);
    if (length !== null) headers["content-length"] = length;
    headers["x-tollgate-event-id"] = eventId;
    // Speech audio: its cost is known before its first byte (tts-1's characters; an estimate otherwise).
    const speech =
      up.statusCode < 300 && call.route.api === "openai.speech"
        ? this.#speechUsage(call, attemptStart)
        : null;
    const price = speech ? this.#quote(call, speech.usage, attemptStart) : null;
    headers["x-tollgate-cost-usd"] = costUsd(
      speech !== null,
      price?.priced ?? false,
      price?.cost.total_nanousd ?? 0n,
    );
    writeHead(res, up.statusCode, headers);
    const pace = new ClientPace(res, up.body, client, call.timeoutMs, up.headers);
    // A batch's results: each answered request recorded as the call it was. Whole files only (a range
    // may start mid-line); a compressed one is relayed as it is, unread (the gateway asked for none).
    const source =
      up.statusCode === 200 && !headerValue(up.headers, "content-encoding")
        ? batchResultsSource(call.method, pathOf(call.route.upstreamPath), call.route.family)
        : null;
    // The store behind: the download waits for it, a minute at most in all (a store that stalls must not
    // stall downloads for long; past that, what it cannot take is spooled, uncounted).
    let waitedMs = 0;
    const results = source
      ? new BatchResultsReader(source.family, (found) => {
          const inputs = found.flatMap((r) => batchCallInputs(call, source, r));
          const room = this.deps.batches.add(call.workspaceId, inputs);
          if (!room || waitedMs >= DOWNLOAD_WAIT_MS) return;
          const since = Date.now();
          pace.hold(room.then(() => (waitedMs += Date.now() - since)));
        })
      : null;
    // A background response's stream resumed: the response it ends with is billed as a poll's would be.
    const final = call.route.resumed && up.statusCode === 200 ? new FinalResponseReader() : null;
    // Relayed as it came; read decoded should the upstream have compressed it anyway.
    const finalInflater = final
      ? streamDecoder(headerValue(up.headers, "content-encoding"), (c) => final.push(c))
      : null;
    let firstByte: number | null = null;
    /** An error answer's start: it names the error type. */
    const errorHead: Buffer[] = [];
    let headBytes = 0;
    let failure: unknown = null;
    try {
      await up.body.read((chunk) => {
        firstByte ??= Date.now();
        if (failed && headBytes < ERROR_HEAD_BYTES) {
          errorHead.push(chunk);
          headBytes += chunk.length;
        }
        pace.wrote(res.write(chunk), chunk.length);
        results?.push(chunk);
        if (finalInflater) finalInflater.write(chunk);
        else final?.push(chunk);
      });
    } catch (e) {
      failure = client.gone ? null : e;
    }
    const complete = !client.gone && failure === null;
    // One kind per reply, as a whole reply's is counted: the upstream's break, else an error answer's status.
    const broke = brokenUpstreamKind(client.gone, failure);
    if (broke) this.#upstreamBroke(call, broke);
    else if (failed)
      this.deps.metrics.upstreamErrors.inc({ family: call.route.family, kind: String(up.statusCode) });
    results?.end(complete); // lines that came whole are results, however the download ended
    this.#record(at, {
      status: complete && !failed ? "ok" : "error",
      http_status: up.statusCode,
      error_type: complete
        ? failed
          ? errorTypeOf(Buffer.concat(errorHead).toString("utf8", 0, ERROR_HEAD_BYTES), up.statusCode)
          : null
        : cutShortReason(client.gone, failure),
      event_id: eventId,
      ttft_ms: firstByte === null ? null : firstByte - attemptStart,
      // Cut short, its audio was (partly) made: billed all the same, as far as anyone can tell.
      ...(speech && { usage: speech.usage, estimated: speech.estimated || !complete, price }),
    });
    if (complete) {
      if (at.ticket?.run) await at.ticket.settling; // as for streams: the run's counts before the last byte
      res.end();
      letGoUnread(res, call.timeoutMs);
    } else res.destroy(); // the client sees the break exactly as it would have without the gateway
    // Its final event came whole: the response finished, whether or not its client stayed for the end.
    await finalInflater?.end().catch(() => {}); // cut short: what was decoded is all there is
    const response = final?.end();
    const background = response ? backgroundResponse(response) : null;
    if (response && background && isFinished(background))
      this.#finishing(this.#recordFinished(call, response, background, "resumed"));
    this.#observe(call.route, call, up.statusCode);
  }

  /** A speech call's usage from its request: its characters where its model bills them, else estimated. */
  #speechUsage(call: Call, at: number): { usage: ExtractedUsage; estimated: boolean } {
    return speechUsage(call.parsed, billsCharacters(this.deps.engine, call.provider, call.model, at));
  }

  /** The cost the record will carry, for the reply header (same provider, model, time and usage). */
  #quote(call: Call, usage: ExtractedUsage | null, attemptStart: number): PriceResult | null {
    if (!usage || !call.route.api) return null;
    try {
      return this.deps.engine.price({
        provider: call.provider,
        model: modelOf(call, usage),
        usage: usage.usage,
        at: attemptStart,
        serviceTier: tierOf(call, usage),
        servedAs: servedAsOf(usage.usage_raw),
      });
    } catch {
      return null; // inconsistent usage from the provider: the record says so; the reply still goes out
    }
  }

  /** SSE relayed chunk by chunk; usage is read on the side; the cost follows as an HTTP trailer. */
  async #relayStream(at: Attempt, up: LiveReply, res: ServerResponse, client: ClientWatch) {
    const { call, start: attemptStart, ticket } = at;
    const api = call.route.api!;
    const eventId = uuidv7();
    const extractor = createSseUsageExtractor(api);
    const stripper = call.injectedUsage ? new UsageChunkStripper() : null;
    const decoder = new StringDecoder("utf8"); // far cheaper to create than a TextDecoder, per stream
    const headers = replyHeaders(up.headers);
    headers["x-tollgate-event-id"] = eventId;
    const pace = new ClientPace(res, up.body, client, call.timeoutMs, up.headers);
    let firstByte: number | null = null;
    let events = 0;
    // A background response's stream is its submission from its first event on: a poll or a resumption that
    // finds the response finished while it runs records it for this call, and turns this call's hold into its spend.
    const background = call.parsed?.background === true;
    let submitted: string | null = null;
    let owner = null as Owner | null; // its submission, once its first event named the response
    // Built once, so the stream and what runs on after it is cut are one submission (the same owner):
    // as its first event named the response, else (that event read only at the stream's end) then.
    const ownerHere = (): Owner => {
      owner ??= { ...ownerOf(call), ticket: heldBy(ticket) };
      return owner;
    };
    const relay = (chunk: Buffer) => {
      // The client's bytes go out before usage is read from them: extraction never delays a token.
      const passed = stripper === null && res.write(chunk);
      const text = decoder.write(chunk);
      const writable = stripper ? writeAny(res, stripper.push(chunk)) : passed;
      extractor.push(text);
      events += countEvents(text);
      pace.wrote(writable, chunk.length);
      if (background && submitted === null) {
        submitted = fieldText(extractor.responseId());
        if (submitted) this.#submitted.set(submitted, Object.assign(ownerHere(), { relaying: true }));
      }
    };
    // A stream the upstream compressed anyway is relayed decoded (the client's own accept-encoding was
    // not sent upstream, so it may not read gzip): usage is read from it, and the added chunk stripped.
    const inflater = streamDecoder(headerValue(up.headers, "content-encoding"), relay);
    if (inflater) delete headers["content-encoding"]; // replyHeaders leaves the length to Node already
    // Trailers need chunked framing, which an HTTP/1.0 client (nginx's default upstream protocol) lacks:
    // it gets the stream without the cost, which GET /api/events/<id> has.
    const trailers =
      res.req.httpVersionMajor > 1 || (res.req.httpVersionMajor === 1 && res.req.httpVersionMinor >= 1);
    if (trailers) headers.trailer = "x-tollgate-cost-usd";
    // The head goes with the body's first chunk: a body that never comes (it stalls, or its connection
    // breaks first) has sent the client nothing, and is answered as a whole reply's would be (504, 502).
    const head = () => {
      if (!res.headersSent) writeHead(res, up.statusCode, headers);
    };
    let failure: unknown = null;
    try {
      // Each chunk is written the moment the upstream's arrives (a client that leaves cancels the request).
      await up.body.read((chunk) => {
        firstByte ??= Date.now();
        head();
        if (inflater) inflater.write(chunk);
        else relay(chunk);
      });
      await inflater?.end();
      if (!client.gone && stripper) {
        const rest = stripper.end();
        if (rest.length > 0) {
          head();
          res.write(rest);
        }
      }
    } catch (e) {
      inflater?.destroy();
      failure = client.gone ? null : e;
    }
    const clientGone = client.gone;
    let usage: ExtractedUsage | null = null;
    let unreadable = false;
    try {
      usage = extractor.result();
    } catch {
      unreadable = true; // a malformed usage object: the call is still recorded, with the reason
    }
    const complete = !clientGone && failure === null;
    // An error event in a stream that ended cleanly (Anthropic's overloaded_error, say): its SDK raises.
    const streamError = extractor.error();
    // Ended on the wire, but neither by its own end marker nor after its usage: cut off upstream (undici
    // ends a reply on a connection that closes or resets quietly). Billed as far as it went, estimated.
    // Anthropic reports usage up front (message_start): its stream without message_stop was cut off all the same.
    const partialUsage = usage === null || call.route.api === "anthropic.messages";
    const cutOff = complete && partialUsage && !unreadable && streamError === null && !extractor.ended();
    const whole = complete && !cutOff;
    // A provider that fails the call inside its stream (Anthropic's overloaded_error after a 200) errs too.
    const fault = streamError !== null && whole ? "stream_error" : brokenUpstreamKind(clientGone, failure);
    this.#upstreamBroke(call, cutOff ? "connection" : fault);
    // A background response's stream: recorded as its submission is (kind=other under its response id,
    // under the event id its header named). Streamed to its end, it records the response too, unless a poll
    // found it finished first (and recorded it). Cut short, the response goes on upstream, priced by the
    // poll that finds it finished; so is one read to its end without usage it can read (none, or malformed),
    // which a poll reads.
    const responseId = background ? fieldText(extractor.responseId()) : null;
    const usageUnread = whole && streamError === null && usage === null;
    // Read to its end without usage it can read (none, or malformed): an ok call of unknown cost, as a
    // whole reply without usage is (one that ended with none was recorded as a call without a problem).
    const wholeErrorType = streamError ?? (usageUnread ? "usage_unreadable" : null);
    // Left to a poll when one is sure to come (the gateway's own, unless a client's is first): without
    // follow-ups, none may, and its hold would lapse at $0; recorded now at a cost unknown, it is charged
    // the worst case held (a poll gets what its final event carried: it reads no more of the usage).
    const waitsForPoll = usageUnread && this.#follows;
    const claim =
      responseId !== null && whole && !waitsForPoll ? await this.#claimFinished(responseId) : null;
    const recordsResponse = claim === "first";
    const pollRecords = responseId !== null && !recordsResponse;
    // Whoever records the response settles this call's hold: this stream, the poll or resumption here that
    // found it finished (it may still be recording), or, cut short (or its usage unread) before any did, the
    // one to come; recorded by another replica, the hold is let go here.
    const leftToPoll = pollRecords && (!whole || waitsForPoll) && !this.#finished.has(responseId);
    // Its submission forgotten before that poll, the poll had none of its hold (and charged the spend
    // whole): the hold goes with this record.
    const keepTicket =
      recordsResponse || (pollRecords && claim !== "taken elsewhere" && (leftToPoll || !owner?.forgotten));
    // Cut off upstream, estimated: what the stream showed of a hosted tool's call (an advisor's
    // consultations in its final message_delta) is recorded all the same, and is in the reply's cost.
    const recorded =
      responseId !== null
        ? null
        : whole
          ? usage
          : estimateUsage(this.deps.engine, call, usage, events, extractor.shown());
    const status = whole && streamError === null ? "ok" : "error";
    const rec = this.#record(at, {
      status,
      http_status: up.statusCode,
      error_type: whole
        ? wholeErrorType
        : cutOff
          ? "upstream_stream_broken"
          : cutShortReason(clientGone, failure),
      usage: recorded,
      estimated: !whole && responseId === null,
      event_id: eventId,
      ttft_ms: firstByte === null ? null : firstByte - attemptStart,
      request_id: responseId ?? undefined,
      ...(responseId !== null ? { kind: "other" as const, keepTicket } : {}),
    });
    // The response's llm record, as a poll finding it finished would make it (the stream's, above, was named
    // in its header before the response was): a poll that records it again, its claim lapsed and its store
    // lookup too late, stores it once, and its budgets count it once (its settle here names that record).
    // Its usage unread, the poll records it alone: a record of the stream's too would count the one call twice.
    const response = recordsResponse
      ? this.#record(at, {
          status,
          http_status: up.statusCode,
          error_type: wholeErrorType,
          usage,
          event_id: responseEventId(call.workspaceId, responseId!),
          ttft_ms: firstByte === null ? null : firstByte - attemptStart,
          request_id: responseId!,
          recurs: true,
        })
      : null;
    if (responseId !== null && !leftToPoll) this.#submitted.delete(responseId);
    // Left to a poll, it is a submission (remembered again, if forgotten meanwhile), followed here unless a
    // client polls it.
    if (responseId !== null && leftToPoll)
      this.#runsOn(call, responseId, Object.assign(ownerHere(), { relaying: false, forgotten: false }));
    if (complete) {
      head();
      // Its cost is the response's, when the stream recorded it; unknown, its usage left to a poll to read.
      const billed = recordsResponse ? response : rec;
      if (billed && trailers) {
        const usageBilled = recordsResponse ? usage : recorded;
        const cost = this.#replyCost(call, usageBilled, attemptStart, billed.priced, billed.cost_nanousd);
        const withTool = { ...billed, priced: cost.priced, cost_nanousd: cost.nanos };
        const costLeftToPoll = leftToPoll && usageUnread;
        res.addTrailers({ "x-tollgate-cost-usd": costLeftToPoll ? COST_UNKNOWN : recordCostUsd(withTool) });
      }
      if (ticket?.run) await ticket.settling; // as for bodies: the run's counts before the last byte
      res.end();
      letGoUnread(res, call.timeoutMs);
    } else if (!clientGone && !res.headersSent)
      throw upstreamFailure(failure, call.timeoutMs, "body").withRecord(rec);
    else res.destroy(); // the client sees the break exactly as it would have without the gateway
    this.#observe(call.route, call, up.statusCode);
  }

  /**
   * A call its agent run's calls in flight turned away waits for them to settle: they leave room, or kill
   * the run. It waits in its run's line (RunLines: first come, first served, a retry in its call's place; the
   * first tries again as a call of the run settles here, else every RUN_HOLD_POLL_MS), up to the configured
   * wait, while its client stays (`left`: it went meanwhile). `releases`: RunLines.releases as its refused
   * admission began. `kept`: the place a retry of it kept through its backoff, which it waits in (null: it
   * joins the line now).
   */
  async #waitForRun(
    call: Call,
    retry: boolean,
    refused: Admission,
    releases: number,
    res: ServerResponse,
    client: ClientWatch | null,
    kept: Place | null,
  ): Promise<{ admission: Admission; left: boolean }> {
    const watch = client ?? watchClient(res);
    const lines = this.#runLines;
    const back = !refused.ok ? refused.inFlight : undefined;
    const place =
      kept ??
      lines.join(
        call.workspaceId,
        call.attribution.agent_run_id!,
        releases,
        call.arrival,
        back?.hold ?? null,
      );
    if (back) place.heard(back.held);
    const wake = () => place.wake();
    watch.signal.addEventListener("abort", wake);
    // Monotonic: a wall-clock step (NTP) neither lengthens the wait nor cuts it short.
    const deadline = performance.now() + this.deps.config.runHoldWaitMs;
    let admission = refused;
    try {
      while (!watch.gone && !lines.closed && performance.now() < deadline) {
        await place.next(deadline);
        if (watch.gone || lines.closed || !place.first) continue;
        const next = await this.#admit(call, retry);
        if (next.ok && lines.closed) {
          // Admitted as the stop began (the limit store's round trip): it is answered as the others are.
          void this.deps.guard.settle(next.ticket, UNSENT);
          break;
        }
        admission = next;
        if (admission.ok || !admission.inFlight) break;
        place.heard(admission.inFlight.held);
      }
      // Out of time (or stopping) behind others, it may not have tried since it joined: its refusal tells
      // the run's figures as its line heard them last, not as they were then.
      if (!admission.ok && admission.inFlight && admission.inFlight.held !== place.lastHeard)
        admission = heldBack({ ...admission.inFlight, held: place.lastHeard });
      return { admission, left: watch.gone };
    } finally {
      place.leave();
      watch.signal.removeEventListener("abort", wake);
      if (!client) watch.stop();
    }
  }

  /**
   * Budgets, rate limits and run ceilings, checked and reserved before each attempt goes upstream; `leave`:
   * room to leave for an earlier call of its run waiting to go (#roomToLeave).
   */
  #admit(call: Call, retry: boolean, leave?: RunHold) {
    const model = call.model ?? "unknown";
    return this.deps.guard.admit({
      workspace: call.workspaceId,
      facts: callFacts(call.attribution, model, call.provider, call.keyId),
      api: call.route.api,
      provider: call.provider,
      model,
      body: call.parsed,
      raw: call.skimMark
        ? { byteLength: call.body.length, includes: (s) => call.body.includes(s), skimMark: call.skimMark }
        : call.body,
      requestId: call.requestId,
      retry,
      depth: call.depth,
      startsWork:
        call.route.api === null && call.method === "POST" && !CANCEL.test(pathOf(call.route.upstreamPath)),
      leave,
    });
  }

  #record(at: Attempt, o: Outcome) {
    const { call, n: attempt, start: attemptStart, ticket } = at;
    call.recordedAttempt = attempt;
    if (o.error_type === "gateway_error")
      this.deps.metrics.upstreamErrors.inc({ family: call.route.family, kind: "gateway_error" });
    const now = o.ts_end === undefined ? Date.now() : o.ts_end;
    const usage = o.usage?.usage;
    const input = blankCallInput();
    input.event_id = o.event_id ?? uuidv7();
    input.ts_start = attemptStart;
    input.ts_end = now;
    input.ttft_ms = o.ttft_ms ?? null;
    input.kind = o.kind ?? call.route.kind;
    input.provider = call.provider;
    input.api = call.route.api;
    input.model_requested = call.modelRequested;
    input.model = modelOf(call, o.usage ?? null);
    input.stream = call.stream;
    input.service_tier = tierOf(call, o.usage ?? null);
    input.status = o.status;
    // A status outside HTTP's range (an upstream answering 600, say) is not one: the record says none.
    input.http_status = o.http_status !== null && isHttpStatus(o.http_status) ? o.http_status : null;
    input.error_type = o.error_type;
    input.attempt = attempt;
    input.request_id = o.request_id ?? call.requestId;
    // Assigned, not spread (see attribution above); later ones win.
    Object.assign(input, usage);
    input.usage_raw = o.usage?.usage_raw ?? null;
    if (o.estimated) input.cost_source = "estimated";
    Object.assign(input, call.attribution);
    input.key_id = call.keyId;
    const recorded = this.deps.recorder.record(input, call.workspaceId, o.price ?? undefined);
    const u = recorded?.record ?? usage;
    if (ticket && !o.keepTicket)
      ticket.settling = this.deps.guard.settle(ticket, {
        cost: recorded
          ? costKnown(recorded.record)
            ? recorded.record.cost_nanousd
            : null
          : (o.price?.cost.total_nanousd ?? null),
        tokens: u ? totalTokens(u) : 0,
        toolCalls: o.toolCalls ?? 0,
        eventId: recorded?.record.event_id ?? null,
        tsStart: recorded?.record.ts_start ?? attemptStart,
        recurs: o.recurs,
        sentAgain: o.error_type === STREAM_OPTIONS_REFUSED,
      });
    if (!recorded) {
      this.deps.metrics.upstreamErrors.inc({ family: call.route.family, kind: "record_failed" });
      return null;
    }
    this.deps.metrics.recordedCost.inc(Number(recorded.record.cost_nanousd));
    const tool = o.usage?.tool_model_call;
    if (tool) {
      const requested =
        o.toolModel !== undefined ? o.toolModel : requestedToolModel(call.route.api, call.parsed);
      const counted = this.#recordToolCall(call, recorded.record, tool, requested, o.recurs);
      // An agent run's reply waits for its counts (below): the tool's call's too, or the run's next call
      // could be admitted before that call counts toward its cost ceiling.
      if (ticket?.settling && counted)
        ticket.settling = Promise.all([ticket.settling, counted]).then(() => {});
    }
    return recorded.record;
  }

  /**
   * The call a hosted tool made on its own model inside this one (the image generation tool's, an
   * advisor's): a record of its own, named by the response's (stored once however often that is recorded),
   * counted against the limits as a call recorded elsewhere is (the promise: counted); its parent_event_id
   * keeps it from counting as another LLM call of its agent run. `recurs`: its call's record may be made
   * again (CallOutcome.recurs), and so may its own: counted once per event id as that one is.
   */
  #recordToolCall(
    call: Call,
    main: CallRecord,
    tool: ToolModelCall,
    requested: string | null,
    recurs: boolean | undefined,
  ): Promise<void> | null {
    const eventId = namedEventId(`tool-model-call:${main.workspace_id}:${main.event_id}`);
    const input = toolModelCallInput(main, tool, requested, eventId);
    const recorded = this.deps.recorder.record(input, call.workspaceId);
    if (!recorded) {
      this.deps.metrics.upstreamErrors.inc({ family: call.route.family, kind: "record_failed" });
      return null;
    }
    this.deps.metrics.recordedCost.inc(Number(recorded.record.cost_nanousd));
    return this.deps.guard.observe([recorded.record], { recurs });
  }

  /**
   * What a reply's cost header says: the call's own cost plus that of the call its image generation tool
   * made (recorded apart, same request id); unknown when either is.
   */
  #replyCost(call: Call, usage: ExtractedUsage | null, at: number, priced: boolean, nanos: bigint) {
    const tool = usage?.tool_model_call;
    if (!tool) return { priced, nanos };
    const price = tool.usage ? this.#quoteTool(call, tool, at) : null;
    return { priced: priced && (price?.priced ?? false), nanos: nanos + (price?.cost.total_nanousd ?? 0n) };
  }

  #quoteTool(call: Call, tool: ToolModelCall, at: number): PriceResult | null {
    try {
      return this.deps.engine.price({
        provider: call.provider,
        model: toolCallModel(tool, requestedToolModel(call.route.api, call.parsed)),
        usage: tool.usage!,
        at,
      });
    } catch {
      return null;
    }
  }

  /**
   * A background response a poll found finished: its one llm record, with the usage it reports, for its
   * submission (as this process saw it, else as the store has it, else the poll's). Named by its workspace
   * and response (a deterministic event id), so polls through other replicas store it once; of polls at
   * once through several replicas, the one that claims it records it, so a budget counts it once too.
   * `read`: how it was found finished (a poll, its own or a client's; a client's resumed stream).
   */
  async #recordFinished(
    call: Call,
    json: Record<string, unknown>,
    response: BackgroundResponse,
    read: ResponseRead,
  ) {
    // Recorded for its submission when this process saw it (a poll may come with another key), else for the poll.
    const here = this.#submitted.get(response.id);
    // Where nothing is spent here (no usage, or recorded elsewhere), the hold of its submission here is let go.
    const letGo = () => this.#release(here);
    let usage: ExtractedUsage | null = null;
    try {
      usage = extractFromResponse("openai.responses", json);
    } catch {
      // A resumed stream that ends without usage it can read, of a response that did not fail: left, as a
      // stream cut short is, to the poll that reads the usage. Its submission here keeps its hold, followed
      // since it ran on (or, still streamed, left to its stream's end); the claim stays that poll's. Not
      // followed, none may come: recorded below, at a cost unknown, as the stream that submitted it is.
      if (read === "resumed" && response.failure === null && this.#follows) return;
      // Finished without usage (cancelled or failed before it ran): nothing was billed. One a poll finds
      // that ran (completed, incomplete) without usage the gateway can read (no later poll reads it better)
      // is recorded at a cost unknown, its hold here (the worst case) counted as any such call's, never as
      // $0.
      if (response.failure !== null) {
        this.#submitted.delete(response.id);
        return letGo();
      }
    }
    // Its usage unread and no hold of it here (its submission forgotten, or made before a restart or
    // through another replica): recorded all the same (no replica may hold it any more, or poll it), but
    // neither claimed nor charged, so that a replica holding its hold still charges that when it finds it.
    const unheld = usage === null && !here;
    let owner = here ?? ownerOf(call);
    const claim = unheld ? this.#foundHere(response.id) : await this.#claimFinished(response.id);
    if (claim === "taken here") return; // by another poll or its stream, which settle its hold
    if (claim === "taken elsewhere") return letGo();
    const createdMs = response.createdMs ?? Date.now();
    // Already recorded elsewhere: by another replica's poll, before a restart, or from its own stream.
    const prior = await this.#recordsOfResponse(owner.workspaceId, response.id, createdMs);
    if (prior.some(unheld ? (r) => r.kind === "llm" : billsResponse)) return letGo();
    // Found nothing (the store too late to answer), it is recorded again: its budgets count it once by its
    // event id while the limits backend knows it charged. Past that (a week on, a restart of the embedded
    // default, a budget over it seeded in memory since), they would count it again in the windows still
    // holding it (a month's, a lifetime): its event id is looked up (a key read) where the store has room
    // for that now. A response made since is not.
    if (
      !prior.length &&
      this.deps.guard.chargeMayBeForgotten(createdMs) &&
      (await this.#storedAlready(owner.workspaceId, response.id))
    )
      return letGo();
    // Submitted through another replica (or before a restart): recorded for its submission as stored,
    // so its agent run and attribution get its cost whoever polls.
    const submission = here ? undefined : prior.find((r) => r.kind === "other");
    if (submission) owner = ownerOfRecord(submission);
    // Recorded as the model call it was, for its owner, from its creation; its submission's hold, when
    // this process has it, becomes its spend.
    const finished: Call = {
      ...call,
      route: { ...call.route, api: "openai.responses", kind: "llm" },
      workspaceId: owner.workspaceId,
      attribution: owner.attribution,
      keyId: owner.keyId,
    };
    const rec = this.#record(
      { call: finished, n: 1, clientTry: 1, start: createdMs, ticket: here?.ticket ?? null },
      {
        status: response.failure === null ? "ok" : "error",
        http_status: 200,
        error_type: response.failure ?? (usage === null ? "usage_unreadable" : null),
        usage,
        event_id: responseEventId(owner.workspaceId, response.id),
        ts_end: null,
        request_id: fieldText(response.id) ?? undefined,
        // The poll's body is not the request's: the submission's tool model, as this process saw it.
        toolModel: here?.toolModel ?? null,
        // Recorded again should a later poll's lookup time out: its budgets count it once all the same.
        recurs: true,
      },
    );
    // Without it, its spend is added to the budgets it falls under (unheld, its cost is unknown here).
    if (rec && !here?.ticket && !unheld)
      await this.deps.guard.observe([rec], { countCalls: false, recurs: true });
  }

  /**
   * A background response submitted by `call` that runs on upstream: remembered for the poll that finds it
   * finished, followed, and its hold kept on its own until then (not in a lease, which goes back meanwhile).
   */
  #runsOn(call: Call, id: string, owner: Owner): void {
    void this.deps.guard.holdApart(owner.ticket ?? null);
    this.#submitted.set(id, owner);
    this.#follow(call, id);
  }

  /** Follows a background response submitted by `call` (BackgroundFollower), polling with its headers. */
  #follow(call: Call, id: string): void {
    // Without its request: up to a day of followed submissions would otherwise keep every one's bytes.
    const slim: Call = { ...call, body: EMPTY_BODY, parsed: null, upload: null };
    this.#follower.follow(id, (n) => this.#pollOwn(slim, id, n));
  }

  /**
   * This process's own poll of a background response no client has found finished: GET
   * /responses/{id} upstream with its submission's headers (its key, held in memory only), recorded for
   * its submission as a client's poll would be.
   */
  async #pollOwn(call: Call, id: string, n: number): Promise<FollowOutcome> {
    const owner = this.#submitted.get(id);
    if (this.#finished.has(id) || !owner) return "gone"; // found, or forgotten
    // Found finished through another replica (its client polls there): nothing to ask upstream. Looked up
    // once: later, #recordFinished's claim tells the same, and a store lookup costs more than a GET.
    const found = n === 1 ? await this.#recordsOfResponse(owner.workspaceId, id, call.started) : [];
    if (found.some(billsResponse)) {
      this.#submitted.delete(id);
      await this.#release(owner);
      return "gone";
    }
    const up = this.#upstream(call.base);
    const headers: Record<string, string> = Object.assign({}, call.forward, call.extraHeaders);
    for (const h of BODY_HEADERS) delete headers[h];
    // The submission's query goes too (Azure's api-version), not whether it streamed.
    const query = new URLSearchParams(call.route.upstreamPath.split("?")[1] ?? "");
    query.delete("stream");
    // Read whole up to the cap (past it, not a response: asked again at the next turn).
    const reply = await requestWhole(
      up.dispatcher,
      {
        origin: up.origin,
        path: `${up.prefix}/responses/${encodeURIComponent(id)}${query.size ? `?${query}` : ""}`,
        method: "GET",
        headers,
        headersTimeout: call.timeoutMs,
        bodyTimeout: call.timeoutMs,
      },
      () => NO_CLIENT,
    );
    this.deps.metrics.backgroundPolls.inc({ status: String(reply.statusCode) });
    if (reply.statusCode !== 200) return pollOutcomeOf(reply.statusCode);
    const json = replyJson(reply.body, headerValue(reply.headers, "content-encoding"));
    const response = json ? backgroundResponse(json) : null;
    if (!json || !response || response.id !== id || !isFinished(response)) return "running";
    const recording = this.#recordFinished(call, json, response, "poll");
    this.#finishing(recording);
    await recording;
    return "finished";
  }

  /**
   * The records of a background response in the store (its submission's, its own): around its creation
   * (ClickHouse reads the days asked for, not the whole workspace), and not for long, its turn included
   * while the store has many such reads still to answer: past that it is recorded anyway (the store keeps
   * one record under its event id, and budgets count it once per event id: CallOutcome.recurs; past what
   * the limits backend knows charged, once its event id is not found stored: #storedAlready).
   */
  #recordsOfResponse(workspaceId: string, id: string, createdMs: number): Promise<CallRecord[]> {
    const filter = {
      workspaceId,
      from: createdMs - DAY_MS,
      to: createdMs + DAY_MS,
      where: { request_id: id },
      limit: 10,
    };
    return this.#lookups.find(() => this.deps.store.query(filter));
  }

  /** Whether the store holds the response's llm record (by its event id): false when it does not say. */
  async #storedAlready(workspaceId: string, id: string): Promise<boolean> {
    const eventId = responseEventId(workspaceId, id);
    const found = await this.#lookups.findIfRoom(async () => [
      ...(await this.deps.store.storedIds(workspaceId, [eventId])),
    ]);
    return found.length > 0;
  }

  /**
   * A submission pushed out by newer ones still running: no poll here finds it any more, so none would
   * turn its hold into its spend, and the poll that finds its response finished charges that spend whole
   * (for the submission as stored, else for the poll). Its hold goes now, nothing spent, as at its TTL:
   * kept, it counted the response twice until then. A stream still relayed keeps its hold to its end.
   */
  #forget(owner: Owner): void {
    owner.forgotten = true;
    if (!owner.relaying) void this.#release(owner);
  }

  /** Lets go of a submission's hold: nothing is spent here (no usage, or recorded elsewhere). */
  async #release(owner: Owner | undefined): Promise<void> {
    if (owner?.ticket)
      await this.deps.guard.settle(owner.ticket, { cost: 0n, tokens: 0, toolCalls: 0, eventId: null });
  }

  /**
   * Whether this call is the first to find the response finished (by a poll, or its stream): of this
   * process's calls, then of the replicas sharing limits. Of every workspace: the provider bills a
   * response once, whoever polls it. Past the claim a poll finds its record in the store.
   */
  async #claimFinished(responseId: string): Promise<"first" | "taken here" | "taken elsewhere"> {
    if (this.#foundHere(responseId) === "taken here") return "taken here";
    // Its submission is this call's to settle (read already, if this process has it): it takes no room
    // from the submissions still running any more, which push out the oldest past the bound.
    this.#submitted.delete(responseId);
    return (await this.deps.guard.claimOnce(ANY_WORKSPACE, `bg:${responseId}`, CLAIM_MS))
      ? "first"
      : "taken elsewhere";
  }

  /** Whether this is the first of this process's calls to find the response finished (no replica's claim). */
  #foundHere(responseId: string): "first" | "taken here" {
    return this.#finished.add(responseId, true) ? "first" : "taken here";
  }

  /**
   * A reply the upstream cut short after its head (broken off, or stalled past the timeout), or failed in
   * its stream, counts as an upstream error, as one that never came does; null: it was not the upstream's doing.
   */
  #upstreamBroke(call: Call, kind: "timeout" | "connection" | "stream_error" | null): void {
    if (kind) this.deps.metrics.upstreamErrors.inc({ family: call.route.family, kind });
  }

  /** Every request the gateway took, answered by the upstream or by the gateway itself (refusals, timeouts). */
  #observe(route: GatewayRoute, timing: Timing, status: number): void {
    this.deps.metrics.requests.inc({
      family: route.family,
      api: route.api ?? "other",
      status: String(status),
    });
    this.deps.metrics.duration.observe(
      { family: route.family, stream: String(timing.stream) },
      (Date.now() - timing.started) / 1000,
    );
  }
}

/** Why the upstream requests still in flight fail when a second signal hurries the shutdown (Gateway.hurry). */
class CutAtShutdown extends Error {
  constructor() {
    super("the gateway is shutting down now: the call was cut short");
  }
}

/** The upstream's reply: a streamed call's body as it comes, any other call's whole. */
type UpstreamReply = LiveReply | WholeReply;
const isWhole = (up: UpstreamReply): up is WholeReply => Buffer.isBuffer(up.body);

/** The request one attempt sends upstream: the client's headers (controls stripped) and bytes. */
function upstreamRequest(call: Call, up: Upstream): Dispatcher.DispatchOptions {
  const headers: Record<string, string> = Object.assign({}, call.forward, call.extraHeaders);
  // An upload keeps the client's length, if it gave one (undici holds the body to it); else it is chunked.
  if (call.upload) {
    const declared = call.upload.headers["content-length"];
    if (declared !== undefined) headers["content-length"] = declared;
  } else headers["content-length"] = String(call.body.length);
  return {
    origin: up.origin, // a pool has its own; the egress proxy agent picks the route by it
    path: up.prefix + call.route.upstreamPath,
    method: call.method as Dispatcher.HttpMethod,
    headers,
    body: call.method === "GET" || call.method === "HEAD" ? null : (call.upload ?? call.body),
    headersTimeout: call.timeoutMs,
    bodyTimeout: call.timeoutMs,
  };
}

/** An integer x-tollgate-<name> control header in min..max, else `fallback`; anything else is refused. */
function intHeader(
  control: Record<string, string>,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number {
  const raw = control[name];
  if (raw === undefined) return fallback;
  const n = /^\d{1,10}$/.test(raw) ? Number(raw) : Number.NaN; // not "", " ", 0x10 or 1e3
  if (!(n >= min && n <= max))
    throw new GatewayError(
      400,
      "invalid_request_error",
      `x-tollgate-${name} must be an integer ${min}..${max}`,
    );
  return n;
}

/**
 * A reply ended with bytes still waiting for its client (a held reply, or the tail of a relayed one the
 * upstream finished first): a client that takes none of them for the upstream timeout is let go, and
 * their memory with it, rather than kept for as long as it keeps its connection.
 */
function letGoUnread(res: ServerResponse, timeoutMs: number): void {
  if (res.writableLength > 0) res.setTimeout(timeoutMs, () => res.destroy());
}

/** Writes `out` unless it is empty; false when the client's buffer is full (as `res.write`). */
function writeAny(res: ServerResponse, out: Buffer): boolean {
  return out.length === 0 || res.write(out);
}

/**
 * A reply's content-length: its body's (`bodyBytes`), or the upstream's for a body relayed unchanged
 * (null). A HEAD answer's is the resource's (its body is empty); 204 and 304 have none.
 */
function contentLength(call: Call, up: UpstreamReply, bodyBytes: number | null): string | null {
  if (up.statusCode === 204 || up.statusCode === 304) return null;
  return call.method === "HEAD" || bodyBytes === null
    ? headerValue(up.headers, "content-length")
    : String(bodyBytes);
}

/** A call whose reply is relayed as it comes: a stream, or any pass-through call (a download may be big). */
function isRelayed(call: Call): boolean {
  return call.stream || (call.route.api === null && !call.route.poll && !call.route.batches);
}

/**
 * A background submission's ticket as its owner keeps it: none when it holds nothing (admitted under no
 * limit). Its response, found finished, is then observed as any call recorded then: against the budgets
 * and token rates that apply by then, in the windows it started in (a settle would count only the budgets
 * added since, not token rates). Nor is the policy set it was admitted under kept alive for a day.
 */
function heldBy(ticket: Ticket | null): Ticket | null {
  return ticket && !isBareTicket(ticket) ? ticket : null;
}

/** The workspace and attribution a call is recorded with. */
function ownerOf(call: Call): Owner {
  return {
    workspaceId: call.workspaceId,
    attribution: call.attribution,
    keyId: call.keyId,
    toolModel: requestedToolModel(call.route.api, call.parsed),
  };
}

/**
 * The records of one answered request of a batch, for whoever downloaded its results, named by it: its
 * call's, and its image generation tool's where the tool made an image (the batch names no tool model).
 */
function batchCallInputs(call: Call, source: BatchResultsSource, r: BatchResult): Record<string, unknown>[] {
  const main = batchCallInput(call, source, r);
  const tool = r.usage.tool_model_call;
  if (!tool) return [main];
  const eventId = namedEventId(`tool-model-call:${call.workspaceId}:${main.event_id}`);
  return [main, toolModelCallInput(main as ToolCallParent, tool, null, eventId)];
}

function batchCallInput(call: Call, source: BatchResultsSource, r: BatchResult): Record<string, unknown> {
  const input = blankCallInput();
  input.event_id = namedEventId(`${source.family}-batch:${call.workspaceId}:${source.id}:${r.customId}`);
  input.ts_start = r.createdMs ?? Date.now(); // Anthropic's results say not when: when they were downloaded
  input.ts_end = null;
  input.kind = r.kind;
  input.provider = call.provider;
  input.api = r.api;
  input.model = fieldText(r.usage.model) ?? "unknown";
  input.stream = false;
  input.batch = true;
  input.service_tier = fieldText(r.usage.service_tier, INPUT_LIMITS.shortText) ?? null;
  input.status = "ok";
  input.http_status = 200;
  input.attempt = 1;
  input.request_id = fieldText(r.requestId) ?? fieldText(r.customId);
  Object.assign(input, r.usage.usage);
  input.usage_raw = r.usage.usage_raw;
  Object.assign(input, call.attribution);
  input.key_id = call.keyId;
  return input;
}

/** Whom a stored call was for: its workspace, key and attribution (the fields it has). */
function ownerOfRecord(rec: CallRecord): Owner {
  const attribution: Attribution = {};
  for (const f of ATTRIBUTION_FIELDS) if (rec[f] !== null) attribution[f] = rec[f];
  if (rec.tags.length) attribution.tags = rec.tags;
  if (Object.keys(rec.metadata).length) attribution.metadata = rec.metadata;
  return { workspaceId: rec.workspace_id, attribution, keyId: rec.key_id };
}

/**
 * Whether a record of a background response is the one of its cost: its llm record, but for one whose
 * usage could not be read (an older SDK's stream's, under an event id of its own: the poll that reads the
 * usage records the response after it; this gateway's streams and the SDK's now leave it to that poll).
 */
function billsResponse(rec: CallRecord): boolean {
  return rec.kind === "llm" && rec.error_type !== "usage_unreadable";
}

/**
 * Whether a record's cost is its call's: not for a model call answered without usage (a transcription as
 * text, srt or vtt), recorded $0 with the cost unknown, which its budgets count at the worst case they held.
 */
function costKnown(rec: CallRecord): boolean {
  return !(rec.status === "ok" && rec.price_ref === PRICE_REF_NO_USAGE);
}

/** The model a call is recorded (and priced) as: the provider's answer, else what was asked for. */
function modelOf(call: Call, usage: ExtractedUsage | null): string {
  return (
    fieldText(usage?.model) ??
    call.model ??
    (call.route.api ? "unknown" : fieldText(call.route.upstreamPath.split("?")[0])!)
  );
}

/** What an unknown x-tollgate-upstream could have named instead: the routes of `serve --upstreams`, or none. */
function upstreamChoices(upstreams: Record<string, unknown>): string {
  const names = Object.keys(upstreams);
  return names.length
    ? `use one of ${names.join(", ")} (serve --upstreams FILE), or leave the header out for the default upstream`
    : "this gateway has no named upstreams (serve --upstreams FILE); leave the header out for the default upstream";
}

/** The model a request that names none runs on, where its provider documents one (OpenAI's image models). */
function defaultModelOf(route: GatewayRoute, parsed: Record<string, unknown> | null): string | null {
  if (route.api !== "openai.images") return null;
  return defaultImageModel(route.upstreamPath.startsWith("/images/edits") ? "edit" : "generation", parsed);
}

/** The service tier a call was served on: the provider's answer (flex is billed less), else what was asked for. */
function tierOf(call: Call, usage: ExtractedUsage | null): string | null {
  return fieldText(usage?.service_tier ?? call.parsed?.service_tier, INPUT_LIMITS.shortText);
}

/** Within the range the record takes (an upstream may answer 600, say). */
function isHttpStatus(status: number): boolean {
  return status >= INPUT_LIMITS.httpStatus.min && status <= INPUT_LIMITS.httpStatus.max;
}

/**
 * The usage of an answer the gateway never read (its client left first, or the gateway failed): a model
 * call answered (or still to be answered, `httpStatus` null) is billed by its provider, so its input is
 * estimated from the request; an error answer is not billed, nor is a pass-through call priced.
 */
function unseenUsage(
  engine: PricingEngine,
  call: Call,
  httpStatus: number | null,
): Pick<Outcome, "usage" | "estimated"> {
  const billable = call.route.api !== null && (httpStatus === null || httpStatus < 300);
  return { usage: billable ? estimateUsage(engine, call, null, 0) : null, estimated: billable };
}

/** Usage of a stream cut short: what the provider reported so far and the stream showed, else an estimate. */
function estimateUsage(
  engine: PricingEngine,
  call: Call,
  partial: ExtractedUsage | null,
  events: number,
  shown?: StreamShown,
): ExtractedUsage {
  // The request as its client sent it: the stream_options the gateway added are no input the provider bills.
  const requestBytes = (call.clientBody ?? call.body).length;
  const stream = { api: call.route.api, model: call.model, requestBytes, events };
  // A transcription's estimate is its worst case, as a budget held it: by the model's context window.
  const model = call.model;
  const contextWindow = () => (model === null ? null : engine.contextWindow(call.provider, model));
  return estimateCutShortUsage(partial, {
    ...stream,
    shown,
    request: call.parsed,
    contextWindow,
    billedBy: () => transcriptionBilling(engine, call.provider, model, call.started),
    billsCharacters: () => billsCharacters(engine, call.provider, model, call.started),
  });
}

/** When a request came in and whether it streams: what /metrics labels every answered request with. */
interface Timing {
  readonly started: number;
  stream: boolean;
}

/**
 * Whether an upstream's answer failed the call: 4xx and 5xx. A 304 (a download the client has already) or
 * a redirect is relayed as the answer it is, no error in the record or the upstream-error metric.
 */
const failedStatus = (status: number) => status >= 400;

/** A pass-through path that cancels work (a background response, a batch): a killed run may still call it. */
const CANCEL = /^\/(responses|batches|messages\/batches)\/[^/]+\/cancel$/;

/** A path without its query string. */
const pathOf = (pathAndQuery: string) => pathAndQuery.split("?", 1)[0]!;

const DAY_MS = 86_400_000;
/**
 * How long a replica's claim to record a finished background response lasts: long past the record's
 * reaching the store (where later polls find it), and short, should the claimant die before recording it.
 */
const CLAIM_MS = 10 * 60_000;
/** Claims of what is one across workspaces (a provider's response) are kept outside any of them. */
const ANY_WORKSPACE = "";
/** How long close() lets batch results read so far wait for the store; past that they are spooled. */
const SHUTDOWN_WAIT_MS = 10_000;

/** How long in all a download of batch results waits for the store to take them. */
const DOWNLOAD_WAIT_MS = 60_000;

/** How long a finished background response waits for the store to say whether it is recorded already. */
const LOOKUP_TIMEOUT_MS = 5_000;
/**
 * How many of those reads may be with the store at once (timed out or not): each takes it milliseconds,
 * so more means a store that has fallen behind, which more reads would only put further behind. The
 * others wait their turn, within LOOKUP_TIMEOUT_MS.
 */
export const MAX_LOOKUPS = 32;

/** A submission's headers that describe its body: not sent with a poll (a GET without one). */
const BODY_HEADERS = [
  "content-type",
  "content-length",
  "content-encoding",
  "transfer-encoding",
  "idempotency-key",
];

/** undici's own connect timeout: connecting takes no longer, whatever the upstream timeout. */
const CONNECT_TIMEOUT_MS = 10_000;

/** The outcome of an admitted call nothing of which went upstream: nothing spent, nor counted. */
const UNSENT: CallOutcome = { cost: 0n, tokens: 0, toolCalls: 0, eventId: null, unsent: true };

/** How often a call waiting on its run's calls in flight tries its admission again. */
const RUN_HOLD_POLL_MS = 50;
/** nginx's code for a client that closed the request before the answer: in /metrics, not on the wire. */
const CLIENT_CLOSED_REQUEST = 499;

/**
 * Waits before a retry, then for the failed attempt's settle (begun by its record, before the wait): the
 * retry's admission must not find that attempt's worst case still held, nor its tokens on a rate (near a
 * cap, a retry after a $0 failure was refused for it). False when the client left meanwhile (the wait then
 * ends at once).
 */
async function waitForRetry(ms: number, client: ClientWatch | null, failed: Ticket | null): Promise<boolean> {
  await sleep(ms, undefined, client ? { signal: client.signal } : undefined).catch(() => {});
  if (!client?.gone) await failed?.settling;
  return !client?.gone;
}
