import { type Dispatcher, errors } from "undici";

/**
 * An upstream request's timeouts, on Node's own timers: its headers are due within `ms` of the request
 * going out on a connection, then each body chunk within `ms` of the one before, except while the reader
 * has paused it (a slow client). undici keeps the same two timeouts on its coarse timers (a tick every
 * ~0.5 s), which let an `x-tollgate-timeout-ms` of 150 fire at about 1 s. The errors are undici's own, so
 * a timeout is answered and recorded the same whichever clock saw it.
 */
export class UpstreamTimer {
  #timer: NodeJS.Timeout | null = null;
  #answered = false;

  constructor(
    private readonly ms: number,
    private readonly fire: (why: Error) => void,
  ) {}

  /** The request went out on a connection. */
  sent(): void {
    this.#arm();
  }

  /** Its headers came: from now on the body's chunks are timed. */
  answered(): void {
    this.#answered = true;
    this.#arm();
  }

  /** A body chunk came: the next is due within the timeout from now. */
  chunk(): void {
    this.#timer?.refresh();
  }

  /** The reader stopped reading: no chunk is due until it resumes. */
  pause(): void {
    this.stop();
  }

  resume(): void {
    this.#arm();
  }

  /** The reply ended or failed. */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(): void {
    this.stop();
    this.#timer = setTimeout(this.#fire, this.ms);
  }

  readonly #fire = () => {
    this.#timer = null;
    this.fire(this.#answered ? new errors.BodyTimeoutError() : new errors.HeadersTimeoutError());
  };
}

/**
 * `opts` with undici's two timeouts off, and the UpstreamTimer that keeps them instead (the gateway
 * gives both the same value: its upstream timeout). No timeout (null, 0): no timer, as undici runs none.
 * A body sent as it comes (a big upload) keeps undici's: it restarts the wait for the headers while the
 * body is still going out, which no dispatch handler is told of.
 */
export function timedByNode(
  opts: Dispatcher.DispatchOptions,
  fire: (why: Error) => void,
): { untimed: Dispatcher.DispatchOptions; timer: UpstreamTimer | null } {
  const ms = opts.headersTimeout;
  const streamed = opts.body != null && typeof opts.body !== "string" && !Buffer.isBuffer(opts.body);
  if (!ms || streamed) return { untimed: opts, timer: null };
  return { untimed: { ...opts, headersTimeout: 0, bodyTimeout: 0 }, timer: new UpstreamTimer(ms, fire) };
}
