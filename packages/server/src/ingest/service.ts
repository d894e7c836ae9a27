import { buildCallRecord, type CallRecord, type FieldError, type PricingEngine } from "@tollgate/core";
import { ApiError } from "../errors.js";
import type { SpendGuard } from "../limits/guard.js";
import type { GroupCommitWriter } from "./writer.js";

export type ItemStatus = "accepted" | "duplicate" | "rejected";

/**
 * Past this many records waiting for the store, an ingest batch is refused (503, nothing stored) rather
 * than queued: a batch waits for its commit however long the store takes, even once its client has given
 * up, so a store slower than its clients' timeouts would otherwise hold every retry of every batch in memory.
 */
export const MAX_STORE_BACKLOG = 100_000;

/**
 * How far ahead of the server's clock a call may start: a client's clock may be off, but a call dated
 * next year would sit in every rollup and forecast until then.
 */
const MAX_CLOCK_SKEW_MS = 86_400_000;
const TOO_FAR_AHEAD: FieldError = {
  field: "ts_start",
  reason: "must not be more than 24 hours ahead of the server's clock",
};

export interface ItemResult {
  index: number;
  event_id: string | null;
  status: ItemStatus;
  errors?: FieldError[];
}

export interface IngestResponse {
  accepted: number;
  duplicates: number;
  rejected: number;
  results: ItemResult[];
}

/**
 * A batch validated and priced, not yet stored: the answer of each item refused (or a duplicate of one
 * before it), and the records to store with the index of the item each was built from.
 */
export interface CheckedBatch {
  results: ItemResult[];
  records: CallRecord[];
  recordIndex: number[];
}

/** Validates, prices and durably stores a batch; answers per item. Invalid items never reach the store. */
export class IngestService {
  constructor(
    private readonly writer: GroupCommitWriter,
    private readonly engine: PricingEngine,
    private readonly guard: SpendGuard,
  ) {}

  /**
   * Not async on purpose: the parsed items are dropped once built into records, so they do not outlive
   * the store's commit (a thousand parsed objects per batch kept across the wait cost the GC dearly).
   */
  ingest(workspaceId: string, items: readonly unknown[]): Promise<IngestResponse> {
    return this.store(this.check(workspaceId, items));
  }

  /** Validates and prices a batch, storing nothing: which items are refused, and the records of the rest. */
  check(workspaceId: string, items: readonly unknown[]): CheckedBatch {
    const results: ItemResult[] = new Array(items.length);
    const records: CallRecord[] = [];
    const recordIndex: number[] = [];
    const seen = new Set<string>();
    const latestStart = Date.now() + MAX_CLOCK_SKEW_MS;
    items.forEach((item, index) => {
      const built = buildCallRecord(item, { workspaceId, engine: this.engine });
      if (!built.ok || built.record.ts_start > latestStart) {
        const errors = built.ok ? [TOO_FAR_AHEAD] : built.errors;
        results[index] = { index, event_id: eventIdOf(item), status: "rejected", errors };
        return;
      }
      const id = built.record.event_id;
      if (seen.has(id)) {
        results[index] = { index, event_id: id, status: "duplicate" };
        return;
      }
      seen.add(id);
      records.push(built.record);
      recordIndex.push(index);
    });
    return { results, records, recordIndex };
  }

  /** Stores a checked batch and counts its new records' spend; answers per item. */
  async store({ results, records, recordIndex }: CheckedBatch): Promise<IngestResponse> {
    let stored: boolean[] = [];
    const backlog = this.writer.backlog;
    if (records.length && backlog > 0 && backlog + records.length > MAX_STORE_BACKLOG)
      throw new ApiError(
        503,
        "api_error",
        "store_busy",
        `the store is behind (${backlog} call records wait for it): nothing of this batch was stored; retry it later (event_id makes retries safe)`,
      );
    if (records.length) {
      try {
        stored = await this.writer.write(records);
      } catch (e) {
        // The store may have committed the batch all the same (its answer lost): its calls are charged
        // once the retry tells which it stored, as new or as duplicates (SpendGuard.doubt).
        await this.guard.doubt(records);
        throw new ApiError(
          503,
          "api_error",
          "store_unavailable",
          `this batch may not have been stored (${(e as Error).message}); retry it: event_id makes retries safe (a call already stored is answered as a duplicate)`,
        );
      }
    }
    records.forEach((r, k) => {
      const index = recordIndex[k]!;
      results[index] = { index, event_id: r.event_id, status: stored[k] ? "accepted" : "duplicate" };
    });
    // Spend recorded here counts against budgets and agent runs too, once: a duplicate counted when it was
    // stored, unless the write that stored it failed (then it counts now, once, as the store holds it).
    const fresh = records.filter((_, k) => stored[k]);
    if (fresh.length) await this.guard.observe(fresh);
    const known = records.filter((_, k) => !stored[k]);
    if (known.length) await this.guard.observeDuplicates(known);
    let accepted = 0;
    let duplicates = 0;
    for (const r of results) {
      if (r.status === "accepted") accepted++;
      else if (r.status === "duplicate") duplicates++;
    }
    return { accepted, duplicates, rejected: results.length - accepted - duplicates, results };
  }
}

function eventIdOf(item: unknown): string | null {
  if (typeof item === "object" && item !== null && "event_id" in item) {
    const id = (item as { event_id: unknown }).event_id;
    return typeof id === "string" ? id.slice(0, 64) : null;
  }
  return null;
}
