import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";
import type { ClientWatch } from "./client-watch.js";
import { QueueWait } from "./queue-wait.js";
import { timedByNode } from "./upstream-timer.js";

/** An upstream reply read to its end. */
export interface WholeReply {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * The most of a reply the gateway holds whole (a model call's, whose cost goes in its headers): past
 * it the upstream is not answering a model call, and the gateway would only run out of memory.
 * 2,048 embeddings of 3,072 floats as JSON come to ~130 MB.
 */
export const MAX_WHOLE_REPLY_BYTES = 256 * 1024 * 1024;

/** A reply too big to hold whole (MAX_WHOLE_REPLY_BYTES). */
export class ReplyTooLarge extends Error {
  constructor() {
    super(`the upstream's reply exceeds ${MAX_WHOLE_REPLY_BYTES} bytes`);
  }
}

/** A reply's chunks held until its end, up to MAX_WHOLE_REPLY_BYTES. */
export class HeldBody {
  #chunks: Buffer[] = [];
  #size = 0;

  /** Keeps `chunk`; false (keeping nothing more) once the reply is past the cap. */
  add(chunk: Buffer): boolean {
    this.#size += chunk.length;
    if (this.#size > MAX_WHOLE_REPLY_BYTES) return false;
    this.#chunks.push(chunk);
    return true;
  }

  bytes(): Buffer {
    return this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
  }
}

/** A whole reply that did not come: `statusCode` and `headers` are set when its headers had (the body then broke off). */
export class ReplyFailed extends Error {
  override name = "ReplyFailed";
  /**
   * `started`: undici had started the request on a connection (to the upstream, or through the egress
   * proxy's tunnel), so it may have reached the upstream; before that nothing of it had.
   */
  constructor(
    override readonly cause: Error,
    readonly statusCode: number | null,
    readonly headers: IncomingHttpHeaders,
    readonly started = true,
  ) {
    super(cause.message);
  }
}

/**
 * Sends one request and buffers its reply. The handler takes the chunks as they arrive: no body stream,
 * async context or per-chunk promise, which `request()` spends on a reply that is buffered anyway (its
 * cost goes in the reply's headers); an idle gateway answered ~20 µs sooner in side-by-side runs.
 */
export function requestWhole(
  dispatcher: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  watchClient: () => ClientWatch,
): Promise<WholeReply> {
  return new Promise((resolve, reject) => {
    let statusCode: number | null = null;
    let headers: IncomingHttpHeaders = {};
    const held = new HeldBody();
    let queued: QueueWait | null = null;
    let started = false;
    let sent: Dispatcher.DispatchController | null = null;
    const { untimed, timer } = timedByNode(opts, (why) => sent?.abort(why));
    const free = dispatcher.dispatch(untimed, {
      onRequestStart(controller) {
        started = true;
        if (queued && !queued.started(controller)) return; // given up while it waited for a connection
        sent = controller;
        timer?.sent();
      },
      onResponseStart(_controller, status, responseHeaders) {
        if (status < 200) return; // informational (103 Early Hints, …): the answer is still to come
        statusCode = status;
        headers = responseHeaders;
        timer?.answered();
      },
      onResponseData(controller, chunk) {
        timer?.chunk();
        if (!held.add(chunk)) controller.abort(new ReplyTooLarge());
      },
      onResponseEnd() {
        timer?.stop();
        resolve({ statusCode: statusCode!, headers, body: held.bytes() });
      },
      onResponseError(_controller, error) {
        timer?.stop();
        queued?.stop();
        reject(new ReplyFailed(error, statusCode, headers, started)); // after a queue timeout, rejected already
      },
    });
    // Every connection busy: the request waits in the pool's queue, its client watched meanwhile (a client
    // that leaves then is never sent). The common case pays for neither.
    if (!free && !started) {
      const client = watchClient();
      queued = new QueueWait(opts.headersTimeout, reject, client.signal, client.stop);
    }
  });
}
