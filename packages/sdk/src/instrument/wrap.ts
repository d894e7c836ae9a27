import { madeForLlm } from "../agent-run.js";
import { type EventFilter, isStream, observeApiPromise, tapParsed } from "./api-promise.js";
import { observeResumedStream, recordIfFinished } from "./background.js";
import { observedResults, observeResultsFile, type Room } from "./batch-results.js";
import type { CallSpec, PollOptions, RecordSink } from "./call.js";
import { TrackedCall } from "./call.js";
import {
  type Attempt,
  inPlaceOf,
  requestTimeoutOf,
  watchingAttempts,
  withTimeLeft,
} from "./request-timeout.js";
import { sentLater } from "./sent-later.js";
import { upstreamOf } from "./upstream.js";

/** The names of a resource's methods already wrapped, so wrapping a client twice records once. */
const WRAPPED = Symbol.for("tollgate.wrapped.methods");

type Method = (this: unknown, ...args: unknown[]) => unknown;

/**
 * How one method's request is adjusted before it is sent to `upstream` (upstreamOf), what of the reply the
 * app must not see, and the errors of an upstream that may refuse the change (`refusedBy`): the request goes
 * again as the app made it, whose answer the app gets, as it would have unwrapped; `refuses` is told when
 * that request was taken (the change was what the upstream refused).
 */
export type Prepare = (
  body: Record<string, unknown>,
  upstream: string | null,
) => {
  body: Record<string, unknown>;
  hideEvent?: EventFilter;
  refusedBy?: (err: unknown) => boolean;
  refuses?: () => void;
};

/**
 * Replaces `resource[name]` on the instance (the SDK's own helpers call it too) with `wrap(original)`.
 * False when the resource or method is absent, or wrapped already.
 */
function wrapMethod(resource: unknown, name: string, wrap: (original: Method) => Method): boolean {
  const target = resource as (Record<string, unknown> & { [WRAPPED]?: Set<string> }) | undefined;
  if (!target || typeof target[name] !== "function" || target[WRAPPED]?.has(name)) return false;
  target[name] = wrap(target[name] as Method);
  if (!target[WRAPPED]) Object.defineProperty(target, WRAPPED, { value: new Set<string>() });
  target[WRAPPED]!.add(name);
  return true;
}

/**
 * `client.withOptions(…)` makes a new client of the same class (another timeout, headers, retries), whose
 * resources are its own: it is returned wrapped as `client` is (`wrap`).
 */
export function wrapDerivedClients(client: object, wrap: (derived: object) => object): boolean {
  return wrapMethod(client, "withOptions", (original) => {
    unwrappedWithOptions.set(client, original);
    return function withOptions(this: unknown, ...args: unknown[]) {
      const derived = original.apply(this, args);
      return typeof derived === "object" && derived !== null ? wrap(derived) : derived;
    };
  });
}

/** Wrapped clients' own `withOptions`, which makes a copy of the client that is not wrapped. */
const unwrappedWithOptions = new WeakMap<object, Method>();

/** A copy of wrapped `client` (as the client's own `withOptions({})` makes it), not wrapped; null if it makes none. */
export function unwrappedCopy(client: object): object | null {
  let copy: unknown;
  try {
    copy = unwrappedWithOptions.get(client)?.call(client, {});
  } catch {
    return null; // AzureOpenAI's throws: it gives its constructor no apiVersion
  }
  return typeof copy === "object" && copy !== null ? copy : null;
}

/**
 * Records every call of `resource[method]` (`create`; the Images API's `generate`, `edit`), whose first
 * argument is the request's params, through `sink`. False when the resource is absent.
 */
export function wrapModelCall(
  resource: unknown,
  method: string,
  spec: CallSpec,
  sink: RecordSink,
  prepare?: Prepare,
): boolean {
  return wrapMethod(
    resource,
    method,
    (original) =>
      function modelCall(this: unknown, body: unknown, options?: unknown) {
        if (typeof body !== "object" || body === null) return original.call(this, body, options);
        const request = body as Record<string, unknown>;
        const call = new TrackedCall(spec, request, sink);
        const timeout = requestTimeoutOf(this, options);
        let admitted: Promise<unknown> | null;
        try {
          admitted = call.admit(signalOf(options), timeout);
        } catch (refused) {
          return rejection(refused); // an agent run over its ceiling: nothing is sent
        }
        if (spec.background && request.background === true) call.pollOptions = pollOptionsOf(options);
        // Waiting for room under its run's ceilings: sent once admitted (aborted, the SDK refuses it itself),
        // its first attempt with what is left of its timeout.
        if (admitted) {
          const since = performance.now();
          return sentLater(admitted, () => {
            const left = withTimeLeft(this, options, timeout, performance.now() - since);
            return send(original, this, call, left, prepare);
          });
        }
        return send(original, this, call, options, prepare);
      },
  );
}

/**
 * `resource[method]`, an SDK helper that makes its calls a tick after it returns (openai-node's `stream()`,
 * `runTools()`): inside `run.llm(…)`, they are its call however late (madeForLlm).
 */
export function wrapLateHelper(resource: unknown, method: string): boolean {
  return wrapMethod(
    resource,
    method,
    (original) =>
      function lateHelper(this: unknown, ...args: unknown[]) {
        return madeForLlm(() => original.apply(this, args));
      },
  );
}

/**
 * Sends a wrapped call with the original method, and records it as the app reads it: once, from the
 * request as the app made it when the upstream refused what `prepare` changed (Prepare.refusedBy).
 */
function send(
  original: Method,
  resource: unknown,
  call: TrackedCall,
  options: unknown,
  prepare: Prepare | undefined,
): unknown {
  const request = call.body as Record<string, unknown>;
  const prepared: ReturnType<Prepare> = prepare?.(request, upstreamOf(resource, options)) ?? {
    body: request,
  };
  // A signal aborted by now (before the call, or since it was admitted): the SDK rejects it unsent.
  if (signalOf(options)?.aborted) call.unsent();
  const sendAs = (body: Record<string, unknown>, as: unknown) => {
    try {
      return original.call(resource, body, as);
    } catch (e) {
      call.unsent(); // thrown before anything was sent (Anthropic's refusal of a long non-streamed call)
      throw e;
    }
  };
  const { refusedBy } = prepared;
  // The attempt an upstream may refuse: the app's own request takes its place.
  let last: Attempt | null = null;
  const watched = refusedBy
    ? watchingAttempts(resource, options, (a) => {
        last = a;
      })
    : options;
  const sent = sendAs(prepared.body, watched);
  const answered = (sent as { responsePromise?: unknown } | null)?.responsePromise;
  if (!refusedBy || !(answered instanceof Promise)) return observeApiPromise(sent, call, prepared.hideEvent);
  // Read as the APIPromise it will be once the answer says which: the one sent, or the app's own request.
  let refused = false;
  const known = answered.then(
    () => {},
    (err) => {
      refused = refusedBy(err);
    },
  );
  const resent = () => {
    const again = sendAs(request, inPlaceOf(resource, options, last));
    const taken = (again as { responsePromise?: unknown } | null)?.responsePromise;
    if (taken instanceof Promise)
      taken.then(
        () => prepared.refuses?.(),
        () => {},
      );
    return observeApiPromise(again, call);
  };
  return sentLater(known, () => (refused ? resent() : observeApiPromise(sent, call, prepared.hideEvent)));
}

/** The request's abort signal (options.signal), which ends a wait for room too. */
function signalOf(options: unknown): AbortSignal | undefined {
  const signal = (options as { signal?: unknown } | null | undefined)?.signal;
  return signal instanceof AbortSignal ? signal : undefined;
}

function pollOptionsOf(options: unknown): PollOptions {
  const o = (typeof options === "object" && options !== null ? options : {}) as PollOptions;
  return { ...(o.headers ? { headers: o.headers } : {}), ...(o.query ? { query: o.query } : {}) };
}

/**
 * `responses.retrieve` records a background response the poll finds finished (once; recordIfFinished), or
 * that its resumed stream (`{ stream: true }`) ends with.
 */
export function wrapRetrieve(resource: unknown, spec: CallSpec, sink: RecordSink): boolean {
  return wrapMethod(
    resource,
    "retrieve",
    (original) =>
      function retrieve(this: unknown, ...args: unknown[]) {
        // The poll's scope and run, as at the call (inside `run.llm(…)`, say), should it record the response.
        const poll = new TrackedCall(spec, {}, sink);
        poll.polls();
        if (typeof args[0] === "string") spec.background?.seen(args[0]);
        return tapParsed(original.apply(this, args), (value) =>
          isStream(value) ? observeResumedStream(value, poll) : recordIfFinished(value, poll),
        );
      },
  );
}

/** `files.content(id)`: a batch output file's results are recorded as the app reads the file. */
export function wrapFileContent(resource: unknown, spec: CallSpec, sink: RecordSink, room: Room): boolean {
  return wrapMethod(
    resource,
    "content",
    (original) =>
      function content(this: unknown, fileId: unknown, ...rest: unknown[]) {
        const reader = new TrackedCall(spec, {}, sink); // its scope and run, as at the call
        const reply = original.call(this, fileId, ...rest);
        return typeof fileId === "string"
          ? tapParsed(reply, (res) => observeResultsFile(res, fileId, reader, room))
          : reply;
      },
  );
}

/** `messages.batches.results(id)`: each succeeded request is recorded as the app iterates the results. */
export function wrapBatchResults(resource: unknown, spec: CallSpec, sink: RecordSink, room: Room): boolean {
  return wrapMethod(
    resource,
    "results",
    (original) =>
      async function results(this: unknown, batchId: unknown, ...rest: unknown[]) {
        const reader = new TrackedCall(spec, {}, sink);
        const decoded = await original.call(this, batchId, ...rest);
        return typeof batchId === "string" ? observedResults(decoded, batchId, reader, room) : decoded;
      },
  );
}

/** A refused call fails the way the SDK's own calls do: as a rejected promise, whichever way it is read. */
function rejection(err: unknown): Promise<never> {
  const p = Promise.reject(err);
  // `_thenUnwrap`: what the SDKs' own helpers (`chat.completions.parse()`, `responses.parse()`) derive from `create`;
  // `_responseProps`: how Anthropic's message threads (and the tool runner over one) read a turn's response.
  return Object.assign(p, {
    withResponse: () => p,
    asResponse: () => p,
    parse: () => p,
    _thenUnwrap: () => p,
    _responseProps: () => p,
  });
}
