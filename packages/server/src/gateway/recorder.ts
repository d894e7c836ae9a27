import {
  ATTRIBUTION_FIELDS,
  buildCallRecord,
  type CallRecord,
  type FieldError,
  type PriceResult,
  type PricingEngine,
} from "@tollgate/core";
import type { GroupCommitWriter } from "../ingest/writer.js";
import { withTimeout } from "../with-timeout.js";
import type { Spool } from "./spool.js";

export interface RecorderOptions {
  /** Records allowed in memory waiting for the store before new ones go straight to the spool. */
  maxPending?: number;
  /** Calls are handed to the store in batches: at most this often… */
  batchMs?: number;
  /** …or as soon as this many are waiting. Each store commit has a fixed cost; per-call commits cannot keep up. */
  batchSize?: number;
  /** How often spooled records are retried. */
  replayMs?: number;
  onError?: (e: unknown) => void;
}

export interface Recorded {
  record: CallRecord;
  /** Set when the record's attribution had to be dropped to store the call at all. */
  attributionError?: FieldError[];
}

const ATTRIBUTION_KEYS = [...ATTRIBUTION_FIELDS, "tags", "metadata"] as const;

/**
 * Turns gateway calls into stored records off the request path: the record (and its cost, which the
 * reply headers need) is built synchronously; storing it is queued on the group-commit writer. When the
 * store fails or too much is pending, records spill to the disk spool and are replayed later.
 */
export class Recorder {
  #pending = 0;
  #batch: CallRecord[] = [];
  /** Past maxPending: records on their way to the spool, one file (and one fsync) per batch. */
  #overflow: CallRecord[] = [];
  /** Batches handed to the store and not yet settled, with their records (spilled if shutdown cannot wait). */
  #inFlight = new Map<Promise<void>, CallRecord[]>();
  /** Why the last spill failed (disk full, read-only), null when it did not: records wait in memory until one succeeds. */
  #spoolError: string | null = null;
  /** Calls the spool refused, handed back to the store and not settled yet: they wait in memory still. */
  #retrying = 0;
  /** The last batch or replay the store settled failed (see #storeFailed). */
  #storeFailing = false;
  #replaying: Promise<void> | null = null;
  /** The calls an earlier process spooled wait for the limits to count them before their replay. */
  #awaitingCount = false;
  /** The spool files an earlier process left, how many calls they held and since when they are replayed. */
  #earlier: { files: Set<string>; calls: number; since: number } | null = null;
  /** close() was called: no timer sends a batch any more, so a call recorded since goes to the spool at once. */
  #closed = false;
  readonly #timer: NodeJS.Timeout;
  readonly #batchTimer: NodeJS.Timeout;
  readonly #maxPending: number;
  readonly #batchSize: number;

  constructor(
    private readonly writer: GroupCommitWriter,
    private readonly engine: PricingEngine,
    private readonly spool: Spool,
    private readonly opts: RecorderOptions = {},
  ) {
    this.#maxPending = opts.maxPending ?? 50_000;
    this.#batchSize = opts.batchSize ?? 2_000;
    this.#timer = setInterval(() => void this.replay(), opts.replayMs ?? 2_000);
    this.#timer.unref();
    this.#batchTimer = setInterval(() => {
      this.#send();
      this.#refill();
      this.#spillOverflow();
    }, opts.batchMs ?? 250);
    this.#batchTimer.unref();
  }

  /** Calls waiting in memory: for the store, or (past maxPending) for their batch to the spool. */
  get pending(): number {
    return this.#pending + this.#overflow.length;
  }

  get spoolDepth(): number {
    return this.spool.depth;
  }

  /**
   * Whether calls wait in memory because the disk refuses the spool (full, read-only), in #overflow or
   * handed to the store again meanwhile: not once the store has taken them, whether or not the disk would
   * take a spill again.
   */
  get spoolFailing(): boolean {
    return this.#spoolError !== null && (this.#overflow.length > 0 || this.#retrying > 0);
  }

  /** While calls wait in memory because the disk refuses the spool (spoolFailing): the disk's error. */
  get spoolRefusal(): string | null {
    return this.spoolFailing ? this.#spoolError : null;
  }

  /**
   * The calls recorded and not stored yet that wait in memory: for their batch, handed to the store and
   * not committed, or on their way to the spool. A call may be listed twice (a failed batch being spooled).
   */
  *waiting(): Generator<CallRecord> {
    yield* this.#batch;
    for (const batch of this.#inFlight.values()) yield* batch;
    yield* this.#overflow;
  }

  /**
   * Builds the record for one call (validating and pricing it) and queues it for storage. Attribution
   * that fails validation (a header too long, say) is dropped rather than losing the call.
   */
  record(input: Record<string, unknown>, workspaceId: string, price?: PriceResult): Recorded | null {
    const ctx = { workspaceId, engine: this.engine, price };
    let built = buildCallRecord(input, ctx);
    let attributionError: FieldError[] | undefined;
    if (!built.ok) {
      attributionError = built.errors;
      const bare = { ...input };
      for (const k of ATTRIBUTION_KEYS) delete bare[k];
      bare.metadata = {
        tollgate_attribution_error: built.errors
          .map((e) => `${e.field}: ${e.reason}`)
          .join("; ")
          .slice(0, 2000),
      };
      built = buildCallRecord(bare, ctx);
      if (!built.ok) {
        // Never thrown: the call it describes has already been answered.
        this.opts.onError?.(new Error(`call not recorded, invalid record: ${JSON.stringify(built.errors)}`));
        return null;
      }
    }
    this.#store(built.record);
    return { record: built.record, attributionError };
  }

  #store(record: CallRecord): void {
    if (this.#closed) {
      // A call that outlived shutdown's wait for it: stored by the next start.
      this.#spill([record]);
      this.#reportLost();
      return;
    }
    if (this.#pending >= this.#maxPending) {
      // Spilled in batches, not one by one: a store that is merely slow must not put a disk sync on
      // every request. Memory stays bounded by maxPending + batchSize.
      this.#overflow.push(record);
      // While the spool refuses, the batch timer retries it (a failing disk is not tried on every call).
      if (this.#overflow.length >= this.#batchSize && this.#spoolError === null) this.#spillOverflow();
      return;
    }
    this.#pending++;
    this.#batch.push(record);
    if (this.#batch.length >= this.#batchSize) this.#send();
  }

  /**
   * Hands the waiting batch to the store; a failed batch goes to the spool whole. `retried`: how many of it
   * the spool refused before (#refill), said to wait in memory until it settles.
   */
  #send(retried = 0): void {
    if (!this.#batch.length) return;
    const batch = this.#batch;
    this.#batch = [];
    const p = this.writer
      .write(batch)
      .then(
        () => this.#storeTook(),
        (e) => {
          this.#storeFailed(e);
          this.#spill(batch);
        },
      )
      .finally(() => {
        this.#pending -= batch.length;
        this.#retrying -= retried; // refused again, they are back in #overflow by now
        this.#inFlight.delete(p);
      });
    this.#inFlight.set(p, batch);
  }

  /**
   * While the spool refuses, calls waiting in memory go to the store as soon as it has room for them
   * (`room`: as many as maxPending allows; a flush sends them all).
   */
  #refill(room = this.#maxPending - this.#pending): void {
    if (this.#spoolError === null || room <= 0 || !this.#overflow.length) return;
    const moved = this.#overflow.splice(0, room);
    this.#pending += moved.length;
    this.#retrying += moved.length;
    this.#batch = this.#batch.concat(moved);
    this.#send(moved.length);
  }

  #spillOverflow(): void {
    if (!this.#overflow.length) return;
    const records = this.#overflow;
    this.#overflow = [];
    this.#spill(records);
  }

  /**
   * To the spool; when the disk refuses too (full, read-only), the records wait in memory (as many as
   * maxPending) for the spool or the store to take them. Only past that are calls lost, and reported:
   * never thrown into the request that triggered it.
   */
  #spill(records: CallRecord[]): void {
    // A file per batch: a nearly full disk takes as many as it has room for (one file of them all, as
    // many as maxPending, would fail whole and leave every one in memory).
    for (let at = 0; at < records.length; at += this.#batchSize) {
      try {
        this.spool.spill(records.slice(at, at + this.#batchSize));
        this.#spoolError = null;
      } catch (e) {
        this.#spillFailed(records.slice(at), e);
        return;
      }
    }
  }

  /** The records the spool refused wait in memory, as many as maxPending; the rest are reported lost. */
  #spillFailed(records: CallRecord[], e: unknown): void {
    if (this.#spoolError === null)
      this.opts.onError?.(
        new Error(
          `spool write failed, call records wait in memory (up to ${this.#maxPending}): ${(e as Error).message}`,
        ),
      );
    this.#spoolError = e instanceof Error ? e.message : String(e);
    const room = Math.max(0, this.#maxPending - this.#overflow.length);
    if (room < records.length)
      this.opts.onError?.(
        new Error(
          `${records.length - room} call records LOST: the store is behind or down, the spool refuses them, and ${this.#maxPending} is as many as wait in memory`,
        ),
      );
    this.#overflow = records.slice(0, room).concat(this.#overflow);
  }

  /** A batch or a replay the store refused: said once an outage (batches go 4 a second, replays every 2 s). */
  #storeFailed(e: unknown): void {
    if (!this.#storeFailing)
      this.opts.onError?.(
        new Error(
          `store failed, call records go to the spool until it takes them again: ${(e as Error).message}`,
        ),
      );
    this.#storeFailing = true;
  }

  #storeTook(): void {
    if (this.#storeFailing) this.opts.onError?.(new Error("the store takes call records again"));
    this.#storeFailing = false;
  }

  /**
   * Stores the calls an earlier process spooled in the background, once `counted` resolves (the limits
   * count them from the spool first: SpendGuard.countUnstored), then with every replay: a spool of a
   * million calls takes about a minute to store, which must not keep the gateway from serving. Says how
   * many wait, and when they are stored.
   */
  storeEarlierSpool(counted: Promise<void>): void {
    const calls = this.spool.depth;
    if (!calls) return;
    this.#earlier = { files: new Set(this.spool.files()), calls, since: Date.now() };
    this.opts.onError?.(
      new Error(`${calls} calls spooled before this start wait to be stored: stored in the background`),
    );
    this.#awaitingCount = true;
    this.#replay(
      counted.finally(() => {
        this.#awaitingCount = false;
      }),
    );
  }

  /** Retries spooled records (tried again at the next turn while the store refuses); one replay at a time. */
  replay(): Promise<void> {
    if (this.#replaying || this.spool.depth === 0) return this.#replaying ?? Promise.resolve();
    return this.#replay(Promise.resolve());
  }

  /** A replay that starts once `after` resolves; no other starts before it ends. */
  #replay(after: Promise<void>): Promise<void> {
    const replaying = after
      // Closed while it waited (a shutdown during the count): the store is closing, the next start stores them.
      .then(() => (this.#closed ? undefined : this.spool.drain((records) => this.writer.write(records))))
      .then(
        () => this.#storeTook(),
        (e) => this.#storeFailed(e),
      )
      .finally(() => {
        this.#replaying = null;
        this.#earlierStored();
      });
    this.#replaying = replaying;
    return replaying;
  }

  /** Says once that none of the spool files an earlier process left is waiting any more. */
  #earlierStored(): void {
    const earlier = this.#earlier;
    if (!earlier || this.spool.files().some((f) => earlier.files.has(f))) return;
    this.#earlier = null;
    const seconds = ((Date.now() - earlier.since) / 1000).toFixed(1);
    this.opts.onError?.(
      new Error(`the ${earlier.calls} calls spooled before this start are stored (${seconds} s)`),
    );
  }

  /**
   * Resolves once every call recorded so far is stored (or spooled, then replayed if the store is up).
   * With `deadlineMs` (shutdown), a store that has not answered by then is not waited for: the batches it
   * holds are spooled too, to be replayed at the next start (appends are idempotent, so one it did
   * commit meanwhile is not stored twice).
   */
  async flush(opts: { deadlineMs?: number } = {}): Promise<void> {
    const settled = (async () => {
      this.#send();
      this.#spillOverflow();
      this.#refill(Number.POSITIVE_INFINITY);
      while (this.#inFlight.size) await Promise.all([...this.#inFlight.keys()]);
      // Shutdown does not wait for the calls spooled before this start while they are counted: the count
      // may take the whole deadline (or a store's silence), and they are on disk for the next start.
      if (opts.deadlineMs === undefined || !this.#awaitingCount) await this.replay();
    })();
    if (opts.deadlineMs === undefined) return settled;
    // `settled` never rejects (store failures are spooled, replay failures reported): a rejection is the deadline.
    await withTimeout(settled, opts.deadlineMs, "the store did not answer").catch((e) => {
      for (const batch of this.#inFlight.values()) this.#spill(batch);
      this.#spillBatch(); // the calls recorded while it waited, in no batch sent yet
      this.opts.onError?.(new Error(`${(e as Error).message} of shutdown: its pending batches were spooled`));
    });
  }

  /** The batch not sent yet, to the spool (shutdown does not wait for the store any more). */
  #spillBatch(): void {
    if (!this.#batch.length) return;
    const batch = this.#batch;
    this.#batch = [];
    this.#pending -= batch.length;
    this.#spill(batch);
  }

  /**
   * Stops the timers; the calls of the batch not sent yet are spooled, as is every call recorded from here
   * on. Calls still in memory then (only while the spool refuses) are reported lost.
   */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    clearInterval(this.#batchTimer);
    this.#spillBatch();
    this.#reportLost();
  }

  #reportLost(): void {
    if (!this.#overflow.length) return;
    this.opts.onError?.(
      new Error(
        `${this.#overflow.length} call records LOST at shutdown: neither the store nor the spool took them`,
      ),
    );
    this.#overflow = [];
  }
}
