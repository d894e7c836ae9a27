import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import type { LiveBody } from "./live-reply.js";

/** A watched call's client: whether it has gone, and the signal that then cancels its upstream request. */
export interface ClientWatch {
  readonly gone: boolean;
  readonly signal: AbortSignal;
  stop(): void;
}

/** The watch of a request the gateway makes on its own (a background response's poll): no client to leave. */
export const NO_CLIENT: ClientWatch = { gone: false, signal: new AbortController().signal, stop: () => {} };

export function watchClient(res: ServerResponse): ClientWatch {
  const abort = new AbortController();
  let gone = false;
  const stop = onceClosed(res, () => {
    if (res.writableFinished) return;
    gone = true;
    abort.abort();
  });
  return {
    get gone() {
      return gone;
    },
    signal: abort.signal,
    stop,
  };
}

/**
 * Calls `done` once, when the response closes or its connection does: a pipelined response still
 * waiting for the one before it is not on its connection yet, and never closes by itself if that goes.
 * Returns what stops watching (a kept-alive connection outlives the response).
 */
export function onceClosed(res: ServerResponse, done: () => void): () => void {
  const socket = res.req.socket;
  let called = false;
  const once = () => {
    if (called) return;
    called = true;
    stop();
    done();
  };
  const stop = () => {
    res.off("close", once);
    socket?.off("close", once);
  };
  // Gone already (while the request was read or its key looked up): 'close' will not come again.
  if (res.destroyed || socket?.destroyed) once();
  else {
    res.once("close", once);
    socket?.once("close", once);
  }
  return stop;
}

/** A relayed body's client did not keep up: it took nothing for a whole upstream timeout, or fell too far behind. */
export class ClientStalled extends Error {}

/** How much of a relayed reply may pile up for a slow client before the upstream is paused. */
const PAUSE_SLACK_BYTES = 64 * 1024;
/** How much may pile up for a slow client of a reply that cannot be paused before the call is given up. */
const UNPAUSED_SLACK_BYTES = 16 * 1024 * 1024;

/** Of a reply with a length that may close after it: the last bytes, never paused (see pausableUntil). */
const UNPAUSED_TAIL_BYTES = 12 * 1024 * 1024;

/**
 * How many bytes of an upstream reply may be read before its connection can no longer be held paused (0:
 * never paused). undici asserts, crashing the process, when a paused connection that is to close ends or
 * is reset (nodejs/undici#5360, in every 7.x release so far). So a reply with `connection: close`, or
 * without framing, is never paused; a chunked one (HTTP/1.1) or one with a length that says `keep-alive`
 * always may be. undici does not say a reply's HTTP version: one with a length and no `connection` header
 * may close after it (HTTP/1.0) or keep alive (HTTP/1.1's default, as Go's and uvicorn's servers do). It
 * is paused only while more than 12 MB of it remain, more than the sockets between can hold, so its
 * connection cannot end while paused; its last 12 MB are buffered for a slow client instead.
 */
export function pausableUntil(headers: IncomingHttpHeaders): number {
  const connection = String(headers.connection ?? "").toLowerCase();
  if (connection.includes("close")) return 0;
  if (
    String(headers["transfer-encoding"] ?? "")
      .toLowerCase()
      .includes("chunked")
  )
    return Infinity;
  const length = headers["content-length"] === undefined ? Number.NaN : Number(headers["content-length"]);
  if (!Number.isSafeInteger(length) || length < 0) return 0;
  return connection.includes("keep-alive") ? Infinity : Math.max(0, length - UNPAUSED_TAIL_BYTES);
}

/**
 * Keeps a relayed upstream body to its client's pace: after each write that found the client's buffer
 * full, the upstream is paused until the client drains. The slack is the 64 KB the body stream of
 * `request()` gave before: undici asserts, crashing the process, when a paused connection is reset. A
 * client that takes nothing for `timeoutMs` (as long as the upstream may stay silent) is let go, with the
 * upstream request: it would otherwise hold that request open for as long as it keeps its connection.
 * A reply that cannot be paused (pausableUntil) is buffered for its client up to 16 MB instead, then given up.
 */
export class ClientPace {
  #waiting = false;
  /** Holds on the reply by whoever else reads it (hold): the upstream resumes once all are let go. */
  #holds = 0;
  readonly #pausableUntil: number;
  /** Bytes of the reply read from the upstream so far. */
  #read = 0;

  constructor(
    private readonly res: ServerResponse,
    private readonly body: LiveBody,
    private readonly client: ClientWatch,
    private readonly timeoutMs: number,
    upstreamHeaders: IncomingHttpHeaders,
  ) {
    this.#pausableUntil = pausableUntil(upstreamHeaders);
  }

  get #pausable(): boolean {
    return this.#read < this.#pausableUntil;
  }

  /**
   * Called after each write of `bytes` of the upstream's reply with what the write answered (false: the
   * client's buffer is full).
   */
  wrote(writable: boolean, bytes: number): void {
    this.#read += bytes;
    if (writable || this.#waiting || this.client.gone || this.res.writableLength <= PAUSE_SLACK_BYTES) return;
    if (!this.#pausable) {
      if (this.res.writableLength > UNPAUSED_SLACK_BYTES)
        this.body.cancel(new ClientStalled("the client fell 16 MB behind a reply that cannot be paused"));
      return;
    }
    this.#waiting = true;
    this.body.pause();
    const stall = setTimeout(
      () =>
        this.body.cancel(new ClientStalled(`the client read nothing of the reply for ${this.timeoutMs} ms`)),
      this.timeoutMs,
    );
    void drainOrClose(this.res)
      .then(() => {
        clearTimeout(stall);
        // Not waiting before resuming: a hold taken while the resumed reply's chunks come pauses it again.
        this.#waiting = false;
        if (this.#holds === 0) this.body.resume();
      })
      .catch(() => {});
  }

  /**
   * Pauses the upstream until `until` settles: another reader of the reply (batch results on their way
   * to the store) fell behind. False when the reply cannot be paused; the reader then keeps up as it can.
   */
  hold(until: Promise<unknown>): boolean {
    if (!this.#pausable) return false;
    if (this.#holds++ === 0 && !this.#waiting) this.body.pause();
    void until
      .finally(() => {
        if (--this.#holds === 0 && !this.#waiting && !this.client.gone) this.body.resume();
      })
      .catch(() => {});
    return true;
  }
}

/** Waits until the client can take more, or is gone; whichever listener did not fire is removed. */
function drainOrClose(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
}
