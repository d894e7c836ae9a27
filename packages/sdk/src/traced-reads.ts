/**
 * What a `traced` fn returns that is read after it returns (an APIPromise, a generator, a provider SDK's
 * stream or stream helper): the span lasts until it is read, and each is returned to the app as it was.
 */

import { notWhenCollected, whenCollected } from "./when-collected.js";

/**
 * Ends the span, once (later calls do nothing): as an error unless `error` is undefined, at `atMs`
 * (performance.now()) or now.
 */
export type EndSpan = (error: unknown, atMs?: number) => void;
/** Runs a step of what the span's fn returned inside the span's context. */
export type InSpan = <R>(run: () => R) => R;

/**
 * Ties the span's `end` to the reading of `value`, in place; false for a value that is not read later (the
 * span ends as it is returned).
 */
export function lastsWhileRead(value: unknown, inSpan: InSpan, end: EndSpan): boolean {
  if (isApiPromise(value)) endWhenParsed(value, inSpan, end);
  else if (isGenerator(value)) endWhenIterated(value, inSpan, end);
  else if (isSdkStream(value)) endWhenStreamRead(value, inSpan, end);
  else if (isStreamHelper(value)) endWhenHelperEnds(value, end);
  else return false;
  return true;
}

/** The provider SDKs' APIPromise (openai, @anthropic-ai/sdk): lazy, its body parsed only when read. */
interface ApiPromiseLike {
  parse(): Promise<unknown>;
  asResponse(): Promise<Response>;
  withResponse?(): Promise<{ data: unknown }>;
}

function isApiPromise(value: unknown): value is ApiPromiseLike {
  const p = value as ApiPromiseLike | null;
  return value instanceof Promise && typeof p?.parse === "function" && typeof p.asResponse === "function";
}

/**
 * The APIPromise keeps its own methods (`then` would make a plain Promise of it), so the app keeps
 * `withResponse()` / `asResponse()`. The span ends as the SDKs' own tracing ends a call's: with the parse
 * (then, withResponse), or with the raw Response when that is read before any parse (a stream's body read
 * from it after that is not the span's). A parse that is a stream (`stream: true`) is the span's while read.
 */
function endWhenParsed(p: ApiPromiseLike, inSpan: InSpan, end: EndSpan): void {
  const settle = <V>(read: Promise<V>, onValue: (value: V) => void): Promise<V> =>
    read.then(
      (value) => {
        onValue(value);
        return value;
      },
      (e) => {
        end(e ?? "rejected");
        throw e;
      },
    );
  let parsed = false;
  const tie = (value: unknown) => {
    if (parsed) return;
    parsed = true;
    if (!lastsWhileRead(value, inSpan, end)) end(undefined);
  };
  const parse = p.parse.bind(p);
  const asResponse = p.asResponse.bind(p);
  let parsing: Promise<unknown> | null = null;
  p.parse = () => {
    parsing ??= settle(parse(), tie);
    return parsing;
  };
  // The SDKs' withResponse() reads both: the parse ends the span then.
  p.asResponse = () => (parsing ? asResponse() : settle(asResponse(), () => end(undefined)));
  // A wrapped call's that waited to be sent (sentLater) reads the APIPromise sent, not this one's parse.
  const withResponse = p.withResponse?.bind(p);
  if (withResponse) p.withResponse = () => settle(withResponse(), ({ data }) => tie(data));
}

type AnyIterator = Iterator<unknown, unknown, unknown> | AsyncIterator<unknown, unknown, unknown>;

/** A generator object (sync or async): what a `function*` or `async function*` returns. */
function isGenerator(value: unknown): value is AnyIterator {
  const tag = Object.prototype.toString.call(value);
  return tag === "[object Generator]" || tag === "[object AsyncGenerator]";
}

type Step = IteratorResult<unknown, unknown>;

/** When the reading of a span's value last went on (performance.now()): an abandoned span ends then. */
interface Progress {
  at: number;
}

/**
 * Ends the span as an error (`abandoned`), at its last `progress`, once `dropped` is collected (unless
 * `token` is unregistered first). Apart, so that no closure it makes holds `dropped` (nor any closure of
 * its caller's: one that did would keep it from being collected).
 */
function endIfAbandoned(dropped: object, end: EndSpan, progress: Progress, token?: object): void {
  whenCollected(dropped, () => end(ABANDONED, progress.at), token);
}

/** Why the span of a value dropped unfinished ended (its error_type). */
const ABANDONED = { name: "abandoned" };

/**
 * Runs each step of `iterator` (`next`, `return`, `throw`: what for…of and for await…of call, a `break`
 * included) `inSpan`, in place; the span ends at the step that finishes it, or that throws, or once the
 * iterator is dropped unfinished (endIfAbandoned).
 */
function endWhenIterated(iterator: AnyIterator, inSpan: InSpan, end: EndSpan): void {
  const progress: Progress = { at: performance.now() };
  const stepped = (step: Step): Step => {
    progress.at = performance.now();
    if (step.done) end(undefined);
    return step;
  };
  const failed = (e: unknown): never => {
    end(e ?? "thrown");
    throw e;
  };
  for (const name of ["next", "return", "throw"] as const) {
    if (typeof iterator[name] !== "function") continue;
    const own = (iterator[name] as (arg?: unknown) => Step | Promise<Step>).bind(iterator);
    Object.defineProperty(iterator, name, {
      configurable: true,
      writable: true,
      value: (arg?: unknown) => {
        let step: Step | Promise<Step>;
        try {
          step = inSpan(() => own(arg));
        } catch (e) {
          return failed(e);
        }
        return step instanceof Promise ? step.then(stepped, failed) : stepped(step);
      },
    });
  }
  endIfAbandoned(iterator, end, progress);
}

/**
 * The provider SDKs' `Stream` (openai, @anthropic-ai/sdk; what `create({stream: true})` parses to): every way
 * of reading it (for await, `tee()`, `toReadableStream()`) takes its events from `iterator()`.
 */
interface SdkStream {
  iterator: () => AsyncIterator<unknown>;
  [Symbol.asyncIterator]: () => AsyncIterator<unknown>;
  tee: () => unknown;
  toReadableStream: () => unknown;
  controller?: AbortController;
}

/**
 * The SDKs' Stream sets `iterator` on itself (their constructor's); a Node Readable (an HTTP response, a file)
 * has an `iterator()` method too, which its for await and pipe() never call: taken for a stream, its span
 * would end only when it was collected, as abandoned.
 */
function isSdkStream(value: unknown): value is SdkStream {
  const s = value as SdkStream | null;
  return (
    typeof s?.iterator === "function" &&
    Object.hasOwn(s, "iterator") &&
    typeof s[Symbol.asyncIterator] === "function" &&
    typeof s.tee === "function" &&
    typeof s.toReadableStream === "function"
  );
}

/**
 * The stream stays the SDK's own object (its `controller`, `tee()`, `toReadableStream()`): only the iterator
 * every read takes its events from is stepped in the span, which ends when it finishes, throws or is closed
 * (a `break`; a readable stream cancelled; aborted unread). `tee()`'s two streams read one such iterator, which ends the span
 * when either reads the last event; they cannot close it: both left unfinished, the span ends once they are
 * dropped, as a stream dropped unread does.
 */
function endWhenStreamRead(stream: SdkStream, inSpan: InSpan, end: EndSpan): void {
  const iterator = stream.iterator;
  // Once read, it is its iterator that readers hold (a reader may drop the stream and keep that).
  const unread: Unread = { read: false };
  endIfAbandoned(stream, end, { at: performance.now() }, unread);
  endIfAbortedUnread(stream.controller?.signal, end, unread);
  stream.iterator = () => {
    unread.read = true;
    notWhenCollected(unread);
    const events = iterator.call(stream);
    endWhenIterated(events, inSpan, end);
    return events;
  };
}

/** Whether a stream's iterator was taken (by for await, tee(), toReadableStream()); its abandoned token. */
interface Unread {
  read: boolean;
}

/**
 * A stream the app aborts before reading it (`stream.controller.abort()`) was left, as a `break` leaves one:
 * the span ends then, ok. Once it is read, its reader ends the span (the SDKs abort a stream that breaks
 * too, before its reader is told why). Apart, so that the listener holds no stream: the signal may outlive it.
 */
function endIfAbortedUnread(signal: AbortSignal | undefined, end: EndSpan, unread: Unread): void {
  signal?.addEventListener(
    "abort",
    () => {
      if (unread.read) return;
      notWhenCollected(unread);
      end(undefined);
    },
    { once: true },
  );
}

/**
 * The SDKs' stream helpers (openai's `chat.completions.stream()`, `runTools()`, `responses.stream()`,
 * Anthropic's `messages.stream()`): they read their stream themselves, whether the app iterates them, listens
 * to their events or awaits their final message, and end once (`end`: finished, failed or aborted).
 */
interface StreamHelper {
  on(event: "end", listener: () => void): unknown;
  done(): Promise<void>;
  abort(): void;
  readonly ended: boolean;
  readonly aborted: boolean;
}

function isStreamHelper(value: unknown): value is StreamHelper {
  const h = value as StreamHelper | null;
  return (
    typeof h?.on === "function" &&
    typeof h.done === "function" &&
    typeof h.abort === "function" &&
    typeof h.ended === "boolean"
  );
}

/**
 * The span ends with the helper. Its error is read from `done()` once it ended: asked before, `done()` would
 * tell the helper its errors are caught, and one the app does not catch would no longer be raised. Aborted
 * (a `break` in for await, the app's `abort()`), it ends as a closed generator's does.
 */
function endWhenHelperEnds(helper: StreamHelper, end: EndSpan): void {
  const ended = () =>
    void helper.done().then(
      () => end(undefined),
      (e: unknown) => end(helper.aborted ? undefined : (e ?? "failed")),
    );
  if (helper.ended) ended();
  else helper.on("end", ended);
}
