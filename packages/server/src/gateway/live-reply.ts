import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";
import { NotSent, QueueWait } from "./queue-wait.js";
import { timedByNode, type UpstreamTimer } from "./upstream-timer.js";
import { HeldBody, ReplyFailed, ReplyTooLarge } from "./whole-reply.js";

/** A streamed call's upstream reply, from its headers on; its body arrives through `body`. */
export interface LiveReply {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: LiveBody;
}

/**
 * A reply body as it arrives. A reader either takes each chunk the moment it comes (`read`: a stream
 * relayed to its client) or the whole body (`whole`: an error answer); chunks that came before a reader
 * are kept for it.
 */
export class LiveBody {
  /** Null once the body has ended or failed: a late pause or resume must not reach the connection's next request. */
  #controller: Dispatcher.DispatchController | null = null;
  #timer: UpstreamTimer | null = null;
  #early: Buffer[] = [];
  #reader: ((chunk: Buffer) => void) | null = null;
  #ended = false;
  #error: Error | null = null;
  #done: { resolve: () => void; reject: (e: Error) => void } | null = null;

  /** Calls `onChunk` with every chunk, in order, as it comes; settles when the body ends or breaks. */
  read(onChunk: (chunk: Buffer) => void): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.#done = { resolve, reject };
    });
    this.#reader = onChunk;
    for (const chunk of this.#early.splice(0)) this.push(chunk);
    if (this.#error) this.#done!.reject(this.#error);
    else if (this.#ended) this.#done!.resolve();
    return done;
  }

  async whole(): Promise<Buffer> {
    const held = new HeldBody();
    await this.read((chunk) => {
      if (!held.add(chunk)) this.cancel(new ReplyTooLarge());
    });
    return held.bytes();
  }

  /** Stops reading from the upstream until `resume` (the client's buffer is full). */
  pause(): void {
    if (!this.#controller) return;
    this.#controller.pause();
    this.#timer?.pause();
  }

  resume(): void {
    if (!this.#controller) return;
    // The timer first: undici hands over the chunks waiting in the connection inside resume(), and one of
    // them may pause the reply again or end it, which must find the timer running to stop it.
    this.#timer?.resume();
    this.#controller.resume();
  }

  /** Ends the request (nobody will read the rest). */
  cancel(reason: Error): void {
    this.#controller?.abort(reason);
    this.fail(reason);
  }

  /** @internal The handler's side. */
  started(controller: Dispatcher.DispatchController, timer: UpstreamTimer | null): void {
    this.#controller = controller;
    this.#timer = timer;
  }
  /** @internal */
  push(chunk: Buffer): void {
    if (this.#error) return;
    if (!this.#reader) {
      this.#early.push(chunk);
      return;
    }
    try {
      this.#reader(chunk);
    } catch (e) {
      this.cancel(new ReaderFault(e)); // the reader broke, not the upstream: its promise says why
    }
  }
  /** @internal */
  end(): void {
    this.#ended = true;
    this.#controller = null;
    this.#done?.resolve();
  }
  /** @internal */
  fail(error: Error): void {
    this.#error ??= error;
    this.#controller = null;
    this.#early = [];
    this.#done?.reject(this.#error);
  }
}

/** A body's reader threw: a fault of the gateway's own while relaying, not of the upstream. */
export class ReaderFault extends Error {
  constructor(override readonly cause: unknown) {
    super(`relaying the reply failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/**
 * Sends one request whose reply is relayed as it comes. Resolves at the reply's headers; rejects when
 * none came (connection error, timeout, `signal` aborted). The handler hands each chunk straight to the
 * body's reader: no body stream, async context or per-chunk promise between the upstream and the client.
 */
export function requestLive(
  dispatcher: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  signal: AbortSignal | undefined,
): Promise<LiveReply> {
  return new Promise((resolve, reject) => {
    const body = new LiveBody();
    let answered = false;
    let controller: Dispatcher.DispatchController | null = null;
    let queued: QueueWait | null = null;
    const { untimed, timer } = timedByNode(opts, (why) => controller?.abort(why));
    const onAbort = () => controller?.abort(signal!.reason);
    const done = () => {
      timer?.stop();
      signal?.removeEventListener("abort", onAbort);
    };
    const free = dispatcher.dispatch(untimed, {
      onRequestStart(c) {
        if (queued && !queued.started(c)) return; // given up while it waited for a connection
        // Left while the connection was being made: the request goes no further.
        if (signal?.aborted) return void c.abort(new NotSent(signal.reason));
        controller = c;
        body.started(c, timer);
        timer?.sent();
        signal?.addEventListener("abort", onAbort, { once: true });
      },
      onResponseStart(_c, statusCode, headers) {
        if (statusCode < 200) return; // informational (103 Early Hints, …): the answer is still to come
        answered = true;
        timer?.answered();
        resolve({ statusCode, headers, body });
      },
      onResponseData(_c, chunk) {
        timer?.chunk();
        body.push(chunk);
      },
      onResponseEnd() {
        done();
        body.end();
      },
      onResponseError(_c, error) {
        queued?.stop();
        done();
        if (answered) body.fail(error);
        else reject(error instanceof NotSent ? error : new ReplyFailed(error, null, {}, controller !== null));
      },
    });
    // Every connection busy: the request waits in the pool's queue (the common case pays nothing for it).
    if (!free && controller === null) queued = new QueueWait(opts.headersTimeout, reject, signal);
  });
}
