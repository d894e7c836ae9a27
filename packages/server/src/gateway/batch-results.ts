import { type BatchFamily, WaitList } from "@tollgate/core";
import type { IngestService } from "../ingest/service.js";
import { withTimeout } from "../with-timeout.js";
import type { Recorder } from "./recorder.js";

// A batch's calls are billed when they run, upstream; the gateway sees them only when their results are
// downloaded through it. Each answered request in the results is recorded then, as a call at the batch rate.

/** A download of a batch's results: the provider speaking it, and the file or batch it is of. */
export interface BatchResultsSource {
  family: BatchFamily;
  /** The output file's id (OpenAI) or the batch's (Anthropic): with `custom_id`, it names each result. */
  id: string;
}

/**
 * Whether a pass-through `GET` (its path below /v1, as sent) to a provider downloads what may be a batch's
 * results: an OpenAI file's content (a batch output file is one; any other file is found out at its first
 * line), or an Anthropic message batch's results. Ids are taken decoded, however the client spelt them.
 */
export function batchResultsSource(
  method: string,
  path: string,
  family: BatchFamily,
): BatchResultsSource | null {
  if (method !== "GET") return null;
  const match =
    family === "openai"
      ? /^\/files\/([^/]+)\/content$/.exec(path)
      : /^\/messages\/batches\/([^/]+)\/results$/.exec(path);
  if (!match) return null;
  try {
    return { family, id: decodeURIComponent(match[1]!) };
  } catch {
    return null; // not proxied anyway (see routes.ts)
  }
}

/**
 * Anthropic's message batches name their results by an absolute `results_url` on the upstream, which its
 * SDK fetches as given: pointed at the gateway (as its client addressed it), the results are read through
 * it. Other URLs are left as they are, and so is every other byte.
 */
export function pointResultsUrlsAt(json: string, upstreamBase: string, gatewayBase: string): string {
  return json.replace(/("results_url"\s*:\s*")([^"]*)"/g, (whole, key: string, url: string) =>
    url.startsWith(`${upstreamBase}/`) ? `${key}${gatewayBase}${url.slice(upstreamBase.length)}"` : whole,
  );
}

/** Past this many calls waiting for the store, the download is paused until they are stored. */
const MAX_WAITING = 5_000;
/** One wait of a download for the store lasts this long at most (a store that hangs must not hang it). */
const MAX_HOLD_MS = 10_000;
/** Past this many (a download that cannot be paused), calls go to the recorder, not counted against budgets. */
const MAX_QUEUED = 50_000;

/**
 * Stores the calls of downloaded batch results through the ingest path: each under an event id named by
 * its result, so downloading the results again stores nothing twice, and only calls stored for the first
 * time count against budgets. Should the store fail, or fall far behind a download that cannot be paused,
 * they go to the gateway's recorder (spooled, never lost), without counting against budgets.
 */
export class BatchRecords {
  /** Groups on their way to the store, side by side (its group commit takes them together), by their storing. */
  readonly #storing = new Map<Promise<void>, { workspaceId: string; inputs: Record<string, unknown>[] }>();
  #waiting = 0;
  /** Downloads waiting for the store to make room. */
  readonly #roomWaiters = new WaitList();

  constructor(
    private readonly ingest: Pick<IngestService, "ingest">,
    private readonly recorder: Pick<Recorder, "record">,
    private readonly log: (msg: string) => void = (m) => console.error(m),
  ) {}

  /** Calls waiting for the store. */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * Queues calls for the store. Returns a promise to pause the download on when the store is behind: it
   * resolves once there is room again, or after MAX_HOLD_MS without; null when there is room.
   */
  add(workspaceId: string, inputs: Record<string, unknown>[]): Promise<void> | null {
    if (this.#waiting + inputs.length > MAX_QUEUED) {
      this.log(
        `batch results: ${inputs.length} calls recorded without counting against budgets (store behind)`,
      );
      this.#record(workspaceId, inputs);
      return null;
    }
    this.#waiting += inputs.length;
    const storing: Promise<void> = this.#store(workspaceId, inputs).finally(() =>
      this.#storing.delete(storing),
    );
    this.#storing.set(storing, { workspaceId, inputs });
    return this.#waiting > MAX_WAITING ? this.#roomWaiters.wait(MAX_HOLD_MS) : null;
  }

  /**
   * Resolves once everything added so far is stored, or spooled: past `withinMs`, what the store has not
   * taken yet goes to the recorder too (the store keeps one of each, should it take them after all).
   */
  async settled(withinMs?: number): Promise<void> {
    const stored = Promise.all(this.#storing.keys()); // never rejects: #store spools what the store refuses
    if (withinMs === undefined) {
      await stored;
      return;
    }
    try {
      await withTimeout(stored, withinMs, "batch results stored");
    } catch {
      for (const { workspaceId, inputs } of this.#storing.values()) this.#record(workspaceId, inputs);
    }
  }

  async #store(workspaceId: string, inputs: Record<string, unknown>[]): Promise<void> {
    try {
      const res = await this.ingest.ingest(workspaceId, inputs);
      const refused = res.results.find((r) => r.status === "rejected");
      if (refused)
        this.log(
          `batch results: ${res.rejected} calls refused by the record schema, e.g. ${JSON.stringify(refused.errors)}`,
        );
    } catch (e) {
      this.log(`batch results: the store refused ${inputs.length} calls (${(e as Error).message}); spooled`);
      this.#record(workspaceId, inputs);
    } finally {
      this.#waiting -= inputs.length;
      if (this.#waiting <= MAX_WAITING) this.#roomWaiters.wakeAll();
    }
  }

  #record(workspaceId: string, inputs: Record<string, unknown>[]): void {
    for (const input of inputs) this.recorder.record(input, workspaceId);
  }
}
