import type { Dispatcher } from "undici";

/** undici's own headersTimeout, for a request that sets none. */
const UNDICI_HEADERS_TIMEOUT_MS = 300_000;

/** A request given up before undici started it on a connection: nothing of it reached the upstream. */
export class NotSent extends Error {
  constructor(override readonly cause: unknown) {
    super("the request was given up before it was sent upstream");
  }
}

/** The upstream timeout passed while the request waited for a free connection (every one was busy). */
class QueueTimeout extends Error {
  /** As the client sees it, the upstream did not answer in time: the gateway's timeout answer and record. */
  readonly code = "UND_ERR_HEADERS_TIMEOUT";

  constructor(timeoutMs: number) {
    super(`no upstream connection came free within ${timeoutMs} ms`);
  }
}

/**
 * Watches a dispatched request until undici starts it on a connection. Until then it waits in the pool's
 * queue, which undici neither times out nor lets anyone cancel: past `timeoutMs`, or when `signal` aborts
 * (its client left), `giveUp` is told why at once, and the request is aborted the moment it starts, before
 * any of it is sent.
 */
export class QueueWait {
  #reason: Error | null = null;
  readonly #timer: NodeJS.Timeout;

  /**
   * `signal` aborts when the client leaves; `unwatch`, if given, is called when the wait ends (a watch set
   * up for the wait alone).
   */
  constructor(
    timeoutMs: number | null | undefined,
    private readonly giveUp: (why: Error) => void,
    private readonly signal?: AbortSignal,
    private readonly unwatch?: () => void,
  ) {
    timeoutMs ??= UNDICI_HEADERS_TIMEOUT_MS;
    this.#timer = setTimeout(() => this.#giveUp(new QueueTimeout(timeoutMs)), timeoutMs);
    if (signal?.aborted) this.#giveUp(new NotSent(signal.reason));
    else signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  readonly #onAbort = () => this.#giveUp(new NotSent(this.signal!.reason));

  #giveUp(why: Error): void {
    this.stop();
    this.#reason = why;
    this.giveUp(why);
  }

  /** From onRequestStart: false when the request was given up meanwhile (it is aborted here, unsent). */
  started(controller: Dispatcher.DispatchController): boolean {
    this.stop();
    if (!this.#reason) return true;
    controller.abort(this.#reason);
    return false;
  }

  /** Stops watching: the request started, or failed before it could (a refused connection, say). */
  stop(): void {
    clearTimeout(this.#timer);
    this.signal?.removeEventListener("abort", this.#onAbort);
    this.unwatch?.();
  }
}
