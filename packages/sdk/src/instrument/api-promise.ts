import {
  backgroundResponse,
  createStreamExtractor,
  type ExtractedUsage,
  extractFromResponse,
  extractFromSse,
  finalResponseOf,
  isPending,
  type StreamExtractor,
} from "@tollgate/core";
import { responseEventId } from "../ids.js";
import { notWhenCollected, whenCollected } from "../when-collected.js";
import { eventsFindingFinished, foundFinished, markFinished, rememberSubmission } from "./background.js";
import { observeBodyInPlace } from "./batch-results.js";
import { BACKGROUND_UNSEEN, type TrackedCall, USAGE_UNREADABLE } from "./call.js";
import { BROKE, readFirstEventAhead } from "./first-event-ahead.js";

/**
 * The parts of the provider SDKs' `APIPromise` relied on (openai-node and anthropic-sdk share the
 * design): a lazy `parse()` behind then/catch/finally/withResponse, `asResponse()` for the raw
 * Response, and the `responsePromise` both start from.
 */
interface ApiPromiseLike {
  parse(): Promise<unknown>;
  asResponse(): Promise<Response>;
  responsePromise: Promise<{ response: Response }>;
  /**
   * Another APIPromise of the same request whose value is `transform`ed: the SDKs' own helpers
   * (`chat.completions.parse()`, `responses.parse()`) build on `create` with it. It parses the reply
   * itself, without this promise's `parse()`.
   */
  _thenUnwrap?: (transform: (data: unknown, props: { response: Response }) => unknown) => unknown;
  /**
   * The response and its request's details, unparsed (`@anthropic-ai/sdk`): a message thread (and the tool
   * runner over one) reads a turn's response so, and parses a streamed turn's apart from this promise.
   */
  _responseProps?: () => Promise<{ response: Response }>;
}

/** The provider SDKs' `Stream`: every way of reading it (for await, tee, toReadableStream) calls `iterator()`. */
export interface StreamLike {
  iterator: () => AsyncIterator<unknown>;
  /** Aborts the stream's request (`stream.controller.abort()`, the request's signal, a helper's `abort()`). */
  controller?: AbortController;
}

/** The error type of a stream the app left (stopped reading, or aborted), as the gateway's of a client gone. */
const LEFT = "client_disconnected";

/** Filters events out of the app's view: ones only there because the wrapper changed the request. */
export type EventFilter = (event: unknown) => boolean;

/**
 * Makes `promise` (what a wrapped `create` returned) record its call when the app reads it, without
 * changing what the app gets: the same object, the same parsed body, the same stream, event by event.
 */
export function observeApiPromise<P>(promise: P, call: TrackedCall, hideEvent?: EventFilter): P {
  const p = promise as unknown as ApiPromiseLike;
  if (!isApiPromise(p)) {
    // Not the APIPromise these wrappers were written against: record from whatever it resolves to.
    void Promise.resolve(promise).then(
      (value) => finishBody(call, value, null),
      (err) => call.finish({ usage: null, ...describeError(err) }),
    );
    return promise;
  }
  return observeParsed(promise, call, (value, response) => {
    if (call.stream && isStream(value)) observeStream(value, call, response, hideEvent);
    else finishBody(call, value, response);
  });
}

/**
 * Records the call of `promise` (an APIPromise) from what it parses to (`record`), from its error, or from
 * its raw Response when only that is read; and so for the promises derived from it with `_thenUnwrap`, from
 * the reply as it came (before the helper's transform, which may throw on a billed reply: a structured
 * output cut off at max_tokens). `record` null: the value was recorded where it was parsed.
 */
function observeParsed<P>(
  promise: P,
  call: TrackedCall,
  record: ((value: unknown, response: Response | null) => void) | null,
): P {
  const p = promise as unknown as ApiPromiseLike;
  let response: Response | null = null;
  p.responsePromise.then(
    (props) => {
      response = props.response;
    },
    () => {}, // the same rejection reaches parse() below
  );
  const parse = p.parse.bind(p);
  const asResponse = p.asResponse.bind(p);
  let parsing: Promise<unknown> | null = null;
  p.parse = () => {
    parsing ??= parse().then(
      (value) => {
        record?.(value, response);
        return value;
      },
      (err) => {
        call.finish({ usage: null, ...describeError(err) });
        throw err;
      },
    );
    return parsing;
  };
  // Only the raw Response is wanted (nothing parses it): the record is read from it.
  p.asResponse = () =>
    asResponse().then((res) => {
      if (!parsing) observeRaw(call, res);
      return res;
    });
  // A message thread's turn: its response may be parsed apart from this promise (a streamed turn's is), or
  // not at all (an error the thread recovers from by sending the turn again), so it is recorded from there.
  const responseProps = p._responseProps;
  if (typeof responseProps === "function")
    p._responseProps = () =>
      responseProps.call(p).then(
        (props) => {
          if (!parsing) observeRaw(call, props.response);
          return props;
        },
        (err) => {
          call.finish({ usage: null, ...describeError(err) });
          throw err;
        },
      );
  const thenUnwrap = p._thenUnwrap;
  if (typeof thenUnwrap === "function")
    p._thenUnwrap = (transform) => {
      const derived = thenUnwrap.call(p, (data, props) => {
        record?.(data, props?.response ?? response);
        return transform(data, props);
      });
      return isApiPromise(derived) ? observeParsed(derived, call, null) : derived;
    };
  return promise;
}

/** A call's raw Response, read as the app reads it: the record comes from it, or from a clone of it. */
function observeRaw(call: TrackedCall, res: Response): void {
  // A stream is read as the app reads it: a clone would read it to its end though the app stopped.
  if (call.stream && call.spec.api !== "openai.speech" && res.body) observeRawStream(call, res);
  else void finishRaw(call, res.clone());
}

function isApiPromise(value: unknown): boolean {
  const p = value as ApiPromiseLike | null;
  return typeof p?.parse === "function" && p.responsePromise instanceof Promise;
}

/**
 * Calls `onValue` with what `promise` (an SDK APIPromise) parses to, when the app reads it, before the app
 * gets it; the app gets the same value. Recording never breaks a call: should `onValue` throw, nothing
 * changes for the app.
 */
export function tapParsed<P>(promise: P, onValue: (value: unknown) => void): P {
  const p = promise as unknown as ApiPromiseLike;
  const seen = (value: unknown) => {
    try {
      onValue(value);
    } catch {}
    return value;
  };
  if (typeof p?.parse !== "function") {
    // Not an APIPromise (another wrapper's): seen first, as its first callback.
    void Promise.resolve(promise).then(seen, () => {});
    return promise;
  }
  const parse = p.parse.bind(p);
  let parsing: Promise<unknown> | null = null;
  p.parse = () => {
    parsing ??= parse().then(seen);
    return parsing;
  };
  return promise;
}

export function isStream(value: unknown): value is StreamLike {
  return typeof (value as StreamLike | null)?.iterator === "function";
}

function finishBody(call: TrackedCall, body: unknown, response: Response | null): void {
  // Speech answers its audio (or an event stream the app reads itself): its usage is known from the request.
  if (call.spec.api === "openai.speech") {
    const ok = (response?.status ?? 200) < 400;
    const speech = ok ? call.speechUsage() : null;
    call.finish({
      usage: speech?.usage ?? null,
      estimated: speech?.estimated,
      httpStatus: response?.status ?? 200,
      requestId: requestIdOf(response),
      errorType: ok ? null : `http_${response?.status}`,
    });
    return;
  }
  const usage = usageOf(() => extractFromResponse(call.spec.api, body));
  // A background response's submission (queued, no usage yet): not a call without usage, and not a model
  // call of its own. As the gateway records it: kind=other, its request id the response's.
  const background =
    usage || typeof body !== "object" || body === null
      ? null
      : backgroundResponse(body as Record<string, unknown>);
  if (background && isPending(background) && call.spec.api === "openai.responses") {
    call.finish({
      usage: null,
      httpStatus: response?.status ?? 200,
      requestId: background.id,
      errorType: null,
      kind: "other",
      runsOn: rememberSubmission(background.id, call),
    });
    return;
  }
  call.finish({
    usage,
    httpStatus: response?.status ?? 200,
    requestId: requestIdOf(response),
    // As the gateway does: a success without readable usage is flagged, never a silent zero.
    errorType: usage ? null : USAGE_UNREADABLE,
  });
}

async function finishRaw(call: TrackedCall, res: Response): Promise<void> {
  if (call.spec.api === "openai.speech") {
    void res.body?.cancel().catch(() => {}); // audio: nothing to read in it (the app's own copy goes on)
    return finishBody(call, null, res);
  }
  let text: string;
  try {
    text = await res.text();
  } catch {
    call.cutShort(null, "upstream_stream_broken", res.status, requestIdOf(res));
    return;
  }
  const usage = usageOf(() =>
    call.stream ? extractFromSse(call.spec.api, text) : extractFromResponse(call.spec.api, JSON.parse(text)),
  );
  const ok = res.status < 400;
  call.finish({
    usage,
    httpStatus: res.status,
    requestId: requestIdOf(res),
    errorType: ok ? (usage ? null : USAGE_UNREADABLE) : `http_${res.status}`,
  });
}

/**
 * A stream's raw Response (`asResponse()`): recorded from the bytes the app reads, when they end, or cut
 * short when the app cancels its read (its connection closes, as without the wrapper) or it breaks.
 */
function observeRawStream(call: TrackedCall, res: Response): void {
  const decoder = new TextDecoder();
  let text = "";
  const partial = () => usageOf(() => extractFromSse(call.spec.api, text));
  const ok = res.status < 400;
  const requestId = requestIdOf(res);
  observeBodyInPlace(res, (own) => {
    const reader = own.getReader();
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        let r: Awaited<ReturnType<typeof reader.read>>;
        try {
          r = await reader.read();
        } catch (err) {
          call.cutShort(partial(), "upstream_stream_broken", res.status, requestId);
          throw err;
        }
        if (r.done) {
          const usage = partial();
          call.finish({
            usage,
            httpStatus: res.status,
            requestId,
            errorType: ok ? (usage ? null : USAGE_UNREADABLE) : `http_${res.status}`,
          });
          controller.close();
          return;
        }
        call.event();
        text += decoder.decode(r.value, { stream: true });
        controller.enqueue(r.value);
      },
      cancel(reason) {
        call.cutShort(partial(), LEFT, res.status, requestId);
        return reader.cancel(reason);
      },
    });
  });
}

function observeStream(
  stream: StreamLike,
  call: TrackedCall,
  response: Response | null,
  hideEvent: EventFilter | undefined,
): void {
  const original = stream.iterator;
  const signal = stream.controller?.signal;
  // A background stream's response runs on should the app abort the stream unread: its first event, which
  // names it, is read as it comes.
  const ahead =
    signal && call.body.background === true
      ? readFirstEventAhead(original.call(stream), call.spec.api)
      : null;
  const unread = recordIfLeftUnread(stream, signal, call, response, ahead?.responseId);
  stream.iterator = () => {
    const events = ahead?.take() ?? original.call(stream);
    // Aborted unread, it was recorded as its submission: the events its SDK took in before the abort may
    // still come, up to the final one, which finds the response finished (as a poll would).
    if (unread.submitted) return eventsFindingFinished(events, call, true);
    unread.read = true;
    // Its readers hold its iterator now, not the stream (for await drops the stream as it starts).
    notWhenCollected(unread);
    const { iterator, left } = observedEvents(events, call, response, hideEvent, signal);
    // Dropped unfinished (a first event kept and the rest let go, one half of a tee() closed and the other
    // unread): what the provider sent so far is billed.
    recordIfCollected(iterator, call, left);
    return iterator;
  };
}

/**
 * A stream aborted before anything read it (`stream.controller.abort()`), or collected unread (dropped: its
 * input is billed all the same): nothing will read it, so it is recorded then, as left, and any hold on its
 * agent run goes. A background stream whose first event named its response (`runningOn`: settled once that
 * event came, or cannot) is recorded as its submission instead: the response runs on; one left before that
 * event is a response unseen (recordUnseen); one that broke before it was aborted by its SDK, not the app, and
 * is recorded as broken, as its reader would find it. One being read is its reader's to record (its SDK aborts
 * it too, as it breaks). The abort listener holds the call weakly: the signal may outlive it (a fetch, the
 * app's own signal), and an unread stream dropped must stay collectable.
 */
function recordIfLeftUnread(
  stream: StreamLike,
  signal: AbortSignal | undefined,
  call: TrackedCall,
  response: Response | null,
  runningOn: Promise<string | null | typeof BROKE> | undefined,
) {
  const state = { read: false, submitted: false };
  const ref = new WeakRef(call);
  const httpStatus = response?.status ?? 200;
  const requestId = requestIdOf(response);
  const handedOverAt = performance.now();
  const leave = (call: TrackedCall | undefined) => (responseId: string | null | typeof BROKE) => {
    if (state.read || !call || call.recorded) return;
    if (responseId === BROKE) call.cutShort(null, "upstream_stream_broken", httpStatus, requestId);
    else if (responseId) {
      recordRunningOn(call, responseId, LEFT, httpStatus);
      state.submitted = true;
    } else if (runningOn) recordUnseen(call, httpStatus, requestId);
    else call.cutShort(null, LEFT, httpStatus, requestId, undefined, handedOverAt);
  };
  const left = (call: TrackedCall | undefined) =>
    runningOn ? void runningOn.then(leave(call)) : leave(call)(null);
  signal?.addEventListener("abort", () => left(ref.deref()), { once: true });
  recordIfCollected(stream, call, left, state);
  return state;
}

/**
 * `left(call)` once `dropped` is collected (unless `token` is passed to notWhenCollected first). Apart, so
 * that no closure it makes holds `dropped`, and the call is held here only, not by listeners that may
 * outlive it (a signal's).
 */
function recordIfCollected(
  dropped: object,
  call: TrackedCall,
  left: (call: TrackedCall) => void,
  token?: object,
): void {
  whenCollected(dropped, () => left(call), token);
}

/**
 * A background response's stream cut short, its response named (or read to its end without usage it can
 * read): the response runs on at the provider (or is left to a poll to read), so the stream is recorded as
 * its submission is (kind=other, under the response id), keeping its hold, and priced by the poll that finds
 * the response finished.
 */
function recordRunningOn(call: TrackedCall, responseId: string, errorType: string, httpStatus: number): void {
  const runsOn = rememberSubmission(responseId, call);
  call.finish({ usage: null, httpStatus, requestId: responseId, errorType, kind: "other", runsOn });
}

/**
 * A background stream the app left before its first event named the response: the response runs on at the
 * provider, but only that event names it (no header of the reply does, its request cannot, and OpenAI lists
 * no responses to find it by), so nothing can follow it or bill it. Recorded as a call whose cost is unknown
 * (not as a stream cut short, which it is not: its estimate would be the input alone), its hold counted as
 * that cost, at once: as any call whose cost stays unknown, never held for the hour a submission is.
 */
function recordUnseen(call: TrackedCall, httpStatus: number, requestId: string | null): void {
  call.finish({ usage: null, httpStatus, requestId, errorType: BACKGROUND_UNSEEN });
}

/**
 * Relays every event unchanged (less hidden ones), reading usage on the way, and records the call once
 * when the stream ends, breaks, or the app stops reading; `left` records it as the app dropped it, for
 * when the iterator is collected unfinished. A plain iterator rather than an async generator: one promise
 * per event instead of several, which matters on long streams.
 */
function observedEvents(
  events: AsyncIterator<unknown>,
  call: TrackedCall,
  response: Response | null,
  hideEvent: EventFilter | undefined,
  aborted?: AbortSignal,
): { iterator: AsyncIterableIterator<unknown>; left: () => void } {
  const extractor: StreamExtractor = createStreamExtractor(call.spec.api);
  const background = call.body.background === true;
  let submitted: string | null = null;
  const httpStatus = response?.status ?? 200;
  const requestId = requestIdOf(response);
  // Why its response failed, when a Responses stream's final event says so (`response.failed`): the call
  // failed, however cleanly its stream ended, as the gateway records it (its SDK raises on no such event).
  let failure: string | null = null;
  /**
   * A stream read to its end (or to its final event). A background response's is recorded under its
   * response id: as the response's record (under the event id a poll's record of it takes, so a poll by
   * another process stores it once), unless a poll or a resumption found it finished first (then the stream
   * is a call, and that record its cost). Its usage unread, it is recorded as its submission, as a cut
   * stream is, and the response left to the poll that reads the usage (the app's, or the client's own),
   * whose record is the response's one llm record: one of the stream's too would count the one call twice.
   * A client that follows none (followBackgroundMs 0) records it here, at a cost unknown, its hold charged.
   */
  const finishWhole = (usage: ExtractedUsage | null, responseId: string | null) => {
    // Left to a poll only where one is sure to come: the client follows its responses (followBackgroundMs).
    if (responseId && !usage && failure === null && !foundFinished(responseId) && call.spec.background)
      return recordRunningOn(call, responseId, USAGE_UNREADABLE, httpStatus);
    // Counted to its run by this record, so a poll inside that run's `run.llm` counts nothing more.
    const countedTo = call.agentRun ? [call.agentRun.run] : [];
    if (responseId && !markFinished(responseId, { countedTo, submittedAs: call.requestedModels }))
      call.finish({ usage: null, httpStatus, requestId: responseId, errorType: null, kind: "other" });
    else
      call.finish({
        usage,
        httpStatus,
        requestId: responseId ?? requestId,
        errorType: failure ?? (usage ? null : USAGE_UNREADABLE),
        eventId: responseId ? responseEventId(responseId) : undefined,
      });
  };
  // When its reading last went on: a stream dropped unfinished ended then, not when it was collected.
  let readAt = performance.now();
  const cutShort = (errorType: string, endedAtMs?: number) => {
    // A background response runs on when its stream is cut short: recorded as its submission is, and
    // priced by the poll that finds it finished. Unless its final event came (the only one of a Responses
    // stream with usage): the app stopped reading at the end, and the response is finished. Left before its
    // first event named the response, it is a response unseen (one that broke then is estimated, as any).
    const responseId = background ? extractor.responseId() : null;
    if (responseId) {
      const usage = usageOf(() => extractor.result());
      if (usage) return finishWhole(usage, responseId);
      recordRunningOn(call, responseId, errorType, httpStatus);
    } else if (background && errorType === LEFT) recordUnseen(call, httpStatus, requestId);
    else
      call.cutShort(
        usageOf(() => extractor.result()),
        errorType,
        httpStatus,
        requestId,
        extractor.shown(),
        endedAtMs,
      );
  };
  const onError = (err: unknown): never => {
    cutShort("upstream_stream_broken");
    throw err;
  };
  /** The next event for `reader`, which the read holds until it settles (see `next`). */
  const read = (reader: AsyncIterator<unknown>): Promise<IteratorResult<unknown>> =>
    events.next().then((r) => onResult(r, reader), onError);
  const onResult = (
    r: IteratorResult<unknown>,
    reader: AsyncIterator<unknown>,
  ): IteratorResult<unknown> | Promise<IteratorResult<unknown>> => {
    readAt = performance.now();
    if (r.done) {
      // The SDKs end an aborted stream as if it had ended: the app stopped it, as by leaving the loop.
      if (aborted?.aborted) {
        cutShort(LEFT);
        return r;
      }
      finishWhole(
        usageOf(() => extractor.result()),
        background ? extractor.responseId() : null,
      );
      return r;
    }
    call.event();
    extractor.push(r.value);
    const final = finalResponseOf(r.value);
    if (final) failure = backgroundResponse({ ...final, background: true })?.failure ?? null;
    // A background response's stream is its submission from its first event on: a poll or a resumption
    // that finds the response finished while the app still reads this stream records it for this call.
    if (background && submitted === null) {
      submitted = extractor.responseId();
      if (submitted) rememberSubmission(submitted, call);
    }
    return hideEvent?.(r.value) ? read(reader) : r;
  };
  const iterator: AsyncIterableIterator<unknown> = {
    // A read under way holds its iterator (`this`, not `iterator`: see below): one the app lets go while it
    // awaits a read is not collected, and recorded as dropped, before that read brings what it is billed for.
    next() {
      return read(this);
    },
    // The app stopped reading (break, return): what it was sent so far is what it pays for.
    return: (value?: unknown) => {
      cutShort(LEFT);
      return events.return ? events.return(value) : Promise.resolve({ done: true, value });
    },
    // Not a closure over `iterator`: `left`'s scope would hold it, and it would never be collected.
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  // Left unfinished, unless it was recorded meanwhile (a poll found its background response finished).
  const left = () => call.recorded || cutShort(LEFT, readAt);
  return { iterator, left };
}

function usageOf(read: () => ExtractedUsage | null): ExtractedUsage | null {
  try {
    return read();
  } catch {
    return null; // no (or malformed) usage: the record says usage_unreadable
  }
}

function requestIdOf(response: Response | null): string | null {
  return response?.headers.get("x-request-id") ?? response?.headers.get("request-id") ?? null;
}

/** openai-node and anthropic-sdk errors: status, the provider's error type, the request id. */
export function describeError(err: unknown): {
  httpStatus: number | null;
  errorType: string;
  requestId: string | null;
} {
  const e = err as {
    status?: unknown;
    type?: unknown;
    code?: unknown;
    name?: unknown;
    requestID?: unknown;
    error?: { error?: { type?: unknown } };
  } | null;
  const status = typeof e?.status === "number" ? e.status : null;
  const type = [e?.type, e?.error?.error?.type, e?.code].find((t) => typeof t === "string" && t !== "");
  // The SDKs' error classes keep Error's own name ("Error"): their class says what happened.
  const className = (err as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  const name = `${typeof e?.name === "string" ? e.name : ""} ${typeof className === "string" ? className : ""}`;
  const errorType =
    (type as string | undefined) ??
    (status !== null
      ? `http_${status}`
      : /Timeout/.test(name)
        ? "timeout"
        : /Abort/.test(name)
          ? "aborted"
          : "connection_error");
  return { httpStatus: status, errorType, requestId: typeof e?.requestID === "string" ? e.requestID : null };
}
