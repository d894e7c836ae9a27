import { type CallRecordInput, WaitList } from "@tollgate/core";
import { guardedCallback } from "./app-callback.js";
import { MAX_TIMER_MS } from "./timer-ms.js";

export interface ExporterOptions {
  /** The Tollgate server's base URL. Default: $TOLLGATE_URL (unless empty), else http://127.0.0.1:4242. */
  url?: string;
  /** An ingest key (`tollgate keys create --workspace W --role ingest`). Default: $TOLLGATE_API_KEY. */
  apiKey?: string;
  /** Records per request (the server takes at most 10,000). Default 500. */
  maxBatch?: number;
  /** A partial batch is sent at most this long after its first record. Default 1000 ms. */
  flushIntervalMs?: number;
  /** Records held while the server is unreachable; past this the oldest are dropped (counted, warned). Default 100,000. */
  maxQueue?: number;
  /** First retry delay; doubles per failed attempt (with jitter) up to maxRetryDelayMs. Default 200 ms. */
  retryDelayMs?: number;
  /** The longest wait between tries, the server's `Retry-After` included. Default 30,000 ms. */
  maxRetryDelayMs?: number;
  /** Per request. Default 10,000 ms. */
  requestTimeoutMs?: number;
  /** Where warnings go (dropped or refused records, server trouble). Default: console.warn. */
  onWarning?: (message: string) => void;
  fetch?: typeof fetch;
}

export interface ExporterStats {
  /** Records waiting to be sent (including the batch in flight). */
  queued: number;
  /** Records the server stored (or already had: a retry of a stored batch). */
  delivered: number;
  /** Records the server refused as invalid (each refusal was warned with its field errors). */
  rejected: number;
  /** Records dropped because the queue was full. */
  dropped: number;
  /** Requests retried after a network error or a 5xx/429. */
  retries: number;
}

interface IngestReply {
  accepted?: number;
  duplicates?: number;
  rejected?: number;
  results?: { index: number; status: string; errors?: { field: string; reason: string }[] }[];
}

/** Why a send did not land, and whether trying again can help. */
class SendError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs: number | null = null,
    /** A request too large: sent in halves, the record that cannot go is found apart. */
    readonly tooLarge = false,
  ) {
    super(message);
  }
}

/** A `Retry-After` in ms: seconds, or an HTTP date (RFC 9110); null when absent, unreadable, zero or past. */
function parseRetryAfter(value: string | null): number | null {
  if (value === null || value.trim() === "") return null;
  const seconds = Number(value);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now();
  return ms > 0 ? ms : null;
}

/** How long room() keeps a producer waiting at most. */
const ROOM_WAIT_MS = 10_000;

/**
 * Batches call records to `POST /v1/events` off the call path. Recording a call is a push onto a
 * bounded queue; one sender drains it in batches (by size, or after flushIntervalMs), retrying with
 * backoff while the server is down. Every record carries its event_id, so a batch resent after an
 * ambiguous failure is stored once. Never throws into the app: problems become counted warnings.
 */
export class Exporter {
  readonly #url: string;
  readonly #urlProblem: string | null;
  readonly #headers: Record<string, string>;
  readonly #maxBatch: number;
  readonly #flushIntervalMs: number;
  readonly #maxQueue: number;
  readonly #retryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #timeoutMs: number;
  readonly #warn: (message: string) => void;
  readonly #fetch: typeof fetch;

  // A queue as an array with a moving head: O(1) push and take without shifting. Batches taken from
  // it are held until delivered, so dropping the oldest queued records never touches one in flight.
  #queue: CallRecordInput[] = [];
  #head = 0;
  #held: CallRecordInput[][] = [];
  #timer: NodeJS.Timeout | null = null;
  #sending: Promise<void> | null = null;
  #retryTimer: { timer: NodeJS.Timeout; wake: () => void } | null = null;
  #failures = 0;
  #closed = false;
  /** Producers waiting for the queue to drain (room()). */
  readonly #roomWaiters = new WaitList();
  readonly #stats = { delivered: 0, rejected: 0, dropped: 0, retries: 0 };
  readonly #flushAtExit = () => void this.#flushOrWarn(10_000, "at exit");

  constructor(opts: ExporterOptions = {}) {
    // An empty TOLLGATE_URL is unset, as the server reads its TOLLGATE_* settings (it made a relative URL).
    const base = opts.url ?? (process.env.TOLLGATE_URL || "http://127.0.0.1:4242");
    this.#url = `${base.replace(/\/+$/, "")}/v1/events`;
    // Not sendable to, it was retried for ever as "unreachable". Given in code, that is the app's bug, told
    // at once; read from the environment, the app's calls must go on: each batch is refused, and warned.
    this.#urlProblem = isHttpUrl(base)
      ? null
      : `${opts.url === undefined ? "TOLLGATE_URL" : "url"} must be an absolute http(s) URL such as http://127.0.0.1:4242, not ${JSON.stringify(base)}`;
    if (opts.url !== undefined && this.#urlProblem)
      throw new TypeError(`Tollgate exporter: ${this.#urlProblem}`);
    const key = opts.apiKey ?? process.env.TOLLGATE_API_KEY;
    this.#headers = {
      "content-type": "application/json",
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    };
    this.#maxBatch = Math.max(1, Math.min(opts.maxBatch ?? 500, 10_000));
    this.#flushIntervalMs = opts.flushIntervalMs ?? 1000;
    this.#maxQueue = Math.max(this.#maxBatch, opts.maxQueue ?? 100_000);
    this.#retryDelayMs = opts.retryDelayMs ?? 200;
    this.#maxRetryDelayMs = opts.maxRetryDelayMs ?? 30_000;
    this.#timeoutMs = opts.requestTimeoutMs ?? 10_000;
    // The app's logger, should it throw, must not throw into the app (export, flush) nor stop the sender.
    this.#warn = opts.onWarning
      ? guardedCallback("onWarning", opts.onWarning, undefined)
      : (m) => console.warn(`[tollgate] ${m}`);
    this.#fetch = opts.fetch ?? globalThis.fetch;
  }

  get stats(): ExporterStats {
    let held = 0;
    for (const b of this.#held) held += b.length;
    return { queued: this.#queue.length - this.#head + held, ...this.#stats };
  }

  /** Queues one record; O(1), never throws, never waits. */
  export(record: CallRecordInput): void {
    if (this.#closed) {
      this.#drop("shut down: a call record made after shutdown() was dropped");
      return;
    }
    this.#queue.push(record);
    if (!live.has(this)) flushOnExit(this, this.#flushAtExit);
    if (this.#queue.length - this.#head > this.#maxQueue) {
      this.#head++; // the oldest goes: the bound holds memory, the warning says what was lost
      this.#compact();
      this.#drop(`queue full (${this.#maxQueue} records): dropped the oldest`);
    }
    const queued = this.#queue.length - this.#head;
    if (queued >= this.#maxBatch) this.#kick();
    else this.#schedule();
  }

  /** A partial batch goes out flushIntervalMs after its first record, unless the sender is at it (it takes it). */
  #schedule(): void {
    if (this.#timer || this.#sending) return;
    this.#timer = setTimeout(() => this.#kick(), this.#flushIntervalMs);
    this.#timer.unref(); // a pending batch never keeps the process alive; beforeExit flushes it
  }

  /**
   * For a producer that can wait (a batch's results read as fast as the app reads the file): null while
   * under half of `maxQueue` records wait; else a promise that resolves once the queue has drained below
   * that, or after 10 s (a server that does not answer must not stall the app's read for long: past
   * `maxQueue`, the oldest records are dropped as for any producer).
   */
  room(): Promise<void> | null {
    if (this.#queue.length - this.#head < this.#maxQueue / 2) return null;
    this.#kick();
    return this.#roomWaiters.wait(ROOM_WAIT_MS);
  }

  /**
   * Sends everything queued so far; resolves true once it is delivered, or false when `timeoutMs` passes
   * first (the records stay queued and keep being retried). For serverless handlers: await it before
   * returning.
   */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.stats.queued > 0) {
      const left = deadline - Date.now();
      if (!(left > 0)) return false; // NaN too
      this.#retryTimer?.wake(); // an explicit flush retries now rather than after the backoff
      const sending = this.#kick();
      let timer: NodeJS.Timeout | undefined;
      // Waited in steps a Node timer can take: a longer one fires at once (flush(Infinity) gave up so).
      await Promise.race([
        sending,
        new Promise<void>((r) => {
          timer = setTimeout(r, Math.min(left, MAX_TIMER_MS));
        }),
      ]);
      clearTimeout(timer);
    }
    return true;
  }

  /** Flushes, then refuses further records (counted as dropped). */
  async shutdown(timeoutMs = 10_000): Promise<boolean> {
    const done = await this.#flushOrWarn(timeoutMs, "shutdown", "; they are dropped");
    this.#closed = true;
    live.delete(this);
    if (this.#timer) clearTimeout(this.#timer);
    // What it could not deliver is given up (the sender stops at its next turn): retried on after
    // shutdown, every 30 s for the process's life, it kept the exporter and delivered what was said lost.
    this.#retryTimer?.wake();
    return done;
  }

  /** flush(), saying how many records it could not deliver (lost, when the process ends next). */
  async #flushOrWarn(timeoutMs: number, when: string, then = ""): Promise<boolean> {
    const done = await this.flush(timeoutMs);
    if (!done)
      this.#warn(
        `${when}: ${this.stats.queued} call records were not delivered within ${timeoutMs} ms${then}`,
      );
    return done;
  }

  /** After shutdown: what is still queued or held is dropped, counted. */
  #giveUp(): void {
    this.#stats.dropped += this.stats.queued;
    this.#held = [];
    this.#queue = [];
    this.#head = 0;
  }

  /** Starts the sender if it is idle; resolves when the queue is empty again. */
  #kick(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#sending ??= this.#drain().finally(() => {
      this.#sending = null;
      // Records queued after the sender found the queue empty, before it stopped, set no timer: one now.
      if (this.#queue.length > this.#head) this.#schedule();
      else live.delete(this); // nothing for an exit to flush: the app may let it go
    });
    return this.#sending;
  }

  async #drain(): Promise<void> {
    for (;;) {
      if (this.#closed) return this.#giveUp();
      const taken = this.#held[0] ?? this.#takeBatch();
      if (!taken) return;
      const request = this.#requestOf(taken);
      if (!request) continue; // none of its records could go
      const { batch, body } = request;
      try {
        const reply = await this.#send(body);
        this.#held.shift();
        this.#settle(batch, reply);
        this.#failures = 0;
        if (this.#queue.length - this.#head < this.#maxQueue / 2) this.#roomWaiters.wakeAll();
      } catch (e) {
        const err = e instanceof SendError ? e : new SendError((e as Error).message, true);
        if (err.retryable) {
          this.#failures++;
          this.#stats.retries++;
          if (this.#failures === 1 || this.#failures % 20 === 0)
            this.#warn(
              `${err.message}; ${this.stats.queued} call records kept, retrying (attempt ${this.#failures + 1})`,
            );
          await this.#backoff(err.retryAfterMs);
        } else if (err.tooLarge && batch.length > 1) {
          const half = Math.ceil(batch.length / 2);
          this.#held.splice(0, 1, batch.slice(0, half), batch.slice(half));
        } else {
          // The server refused the request itself (not its records): resending it unchanged cannot help.
          this.#held.shift();
          this.#stats.rejected += batch.length;
          this.#warn(`${batch.length} call records refused: ${err.message}`);
        }
      }
    }
  }

  /** Moves the next batch from the queue to the held (in-flight) list; null when the queue is empty. */
  #takeBatch(): CallRecordInput[] | null {
    if (this.#queue.length === this.#head) return null;
    const batch = this.#queue.slice(this.#head, this.#head + this.#maxBatch);
    this.#head += batch.length;
    this.#compact();
    this.#held.push(batch);
    return batch;
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * The held batch at the head as a request body. Records JSON cannot hold (an app's BigInt, a cycle) are
   * taken out of it, refused and counted, one warning for them all: resent, they would hold up every record
   * after them (split in halves, every record of a batch with many was sent and warned alone). Null when
   * none is left to send.
   */
  #requestOf(batch: CallRecordInput[]): { batch: CallRecordInput[]; body: string } | null {
    try {
      return { batch, body: JSON.stringify(batch) };
    } catch {
      // The body is made of the texts found one by one: exactly what was found sendable, whatever a toJSON does next.
      const sendable: CallRecordInput[] = [];
      const parts: string[] = [];
      let why = "";
      for (const r of batch) {
        try {
          parts.push(JSON.stringify(r) ?? "null"); // as in an array: a toJSON that gives undefined
          sendable.push(r);
        } catch (e) {
          why ||= (e as Error).message;
        }
      }
      const refused = batch.length - sendable.length;
      if (refused) {
        this.#stats.rejected += refused;
        this.#warn(`${refused} call records refused: not sendable as JSON (first: ${why})`);
      }
      if (!sendable.length) {
        this.#held.shift();
        return null;
      }
      this.#held[0] = sendable;
      return { batch: sendable, body: `[${parts.join(",")}]` };
    }
  }

  async #send(body: string): Promise<IngestReply> {
    if (this.#urlProblem) throw new SendError(this.#urlProblem, false);
    let res: Response;
    try {
      res = await this.#fetch(this.#url, {
        method: "POST",
        headers: this.#headers,
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      throw new SendError(`Tollgate at ${this.#url} unreachable (${cause ?? (e as Error).message})`, true);
    }
    const text = await res.text().catch(() => "");
    if (res.ok) {
      try {
        return JSON.parse(text) as IngestReply;
      } catch {
        return {}; // stored (2xx); only the per-item detail is lost
      }
    }
    if (res.status === 413) throw new SendError("Tollgate answered 413 (batch too large)", false, null, true);
    // 401/403 may be a key being rotated: kept and retried like an outage, never silently discarded.
    const retryable = res.status >= 500 || res.status === 429 || res.status === 401 || res.status === 403;
    throw new SendError(
      `Tollgate answered ${res.status}: ${text.slice(0, 300)}`,
      retryable,
      parseRetryAfter(res.headers.get("retry-after")),
    );
  }

  #settle(batch: CallRecordInput[], reply: IngestReply): void {
    const refused = (reply.results ?? []).filter((r) => r.status === "rejected");
    this.#stats.rejected += refused.length;
    this.#stats.delivered += batch.length - refused.length;
    if (refused.length) {
      const first = refused[0]!;
      const why = (first.errors ?? []).map((e) => `${e.field}: ${e.reason}`).join("; ");
      this.#warn(`${refused.length} call records refused by the server (first: ${why})`);
    }
  }

  #backoff(retryAfterMs: number | null): Promise<void> {
    if (this.#closed) return Promise.resolve(); // shut down while its send was out: given up next
    const exp = Math.min(this.#maxRetryDelayMs, this.#retryDelayMs * 2 ** Math.min(this.#failures - 1, 20));
    // The server's wait, bounded: a proxy's hour (or a skewed clock's date) must not stall delivery.
    const ms =
      retryAfterMs !== null
        ? Math.min(retryAfterMs, this.#maxRetryDelayMs)
        : exp / 2 + Math.random() * (exp / 2);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#retryTimer = null;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.#retryTimer = { timer, wake };
    });
  }

  /** Counts one dropped record; one warning per thousand drops, so an outage does not flood the app's log. */
  #drop(why: string): void {
    if (this.#stats.dropped++ % 1000 === 0) this.#warn(`${why}; ${this.#stats.dropped} dropped so far`);
  }
}

// Timers are unref'd so a pending batch never holds a process open; instead, when a script's event
// loop runs dry, every exporter with records left gets one flush (which keeps the loop alive until done).
// Listed only while it holds records: one made per request, say, is collected once delivered and let go.
const live = new Map<Exporter, () => void>();
let hooked = false;
function flushOnExit(exporter: Exporter, flushNow: () => void): void {
  live.set(exporter, flushNow);
  if (hooked) return;
  hooked = true;
  process.on("beforeExit", () => {
    // Once each: a server that stays down must not keep the process from exiting.
    for (const [e, flushNow] of live) {
      live.delete(e);
      if (e.stats.queued > 0) flushNow();
    }
  });
}

function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}
