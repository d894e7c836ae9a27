import { guardedCallback } from "./app-callback.js";
import { Exporter, type ExporterOptions } from "./exporter.js";
import type { CostEstimator, RecordSink } from "./instrument/call.js";

export interface WrapOptions {
  /** The provider calls are priced as (default: the client's own, e.g. "openai"; "azure" for Azure OpenAI). */
  provider?: string;
  /** Where records go; default: the exporter set by `configure()` (else one from $TOLLGATE_URL / $TOLLGATE_API_KEY). */
  exporter?: Exporter;
  /** Receives each record instead of an exporter (tests, custom pipelines). */
  sink?: RecordSink;
  /**
   * Costs for models Tollgate cannot price (custom or self-hosted): return nano-USD to send it as the
   * record's cost (`cost_source=estimated`), or null to leave pricing to the server (the default).
   */
  estimateCost?: CostEstimator;
  /**
   * OpenAI: a background response (`responses.create({ background: true })`) that no poll through this
   * client has found finished for this long is retrieved by the client itself, then at doubling intervals
   * up to 5 minutes, for up to a day, so that its cost is recorded though the app learns of its end from
   * webhooks. A poll of the app's own puts the next one off. Default 30 000 ms; 0: never.
   */
  followBackgroundMs?: number;
}

let current: Exporter | null = null;

/** Sets the exporter every wrapped client and `traced` span sends to (unless given their own). */
export function configure(options: ExporterOptions | Exporter = {}): Exporter {
  current = options instanceof Exporter ? options : new Exporter(options);
  return current;
}

/** The configured exporter, created from the environment on first use when `configure()` was never called. */
export function defaultExporter(): Exporter {
  current ??= new Exporter();
  return current;
}

/** A sink resolved per record, so `configure()` may come after the clients were wrapped. */
export function sinkOf(options: WrapOptions): RecordSink {
  if (options.sink) return sharedGuard("the record sink", options.sink, undefined);
  const exporter = options.exporter;
  return exporter ? (r) => exporter.export(r) : (r) => defaultExporter().export(r);
}

/**
 * One guard per callback of the app's (however many clients, APIs and spans it is given to, a client made
 * per request or tenant too), so its warnings are counted once: one per thousand, not one per client.
 */
const guards = new WeakMap<object, unknown>();
function sharedGuard<A, R>(what: string, fn: (arg: A) => R, fallback: R): (arg: A) => R {
  let guarded = guards.get(fn) as ((arg: A) => R) | undefined;
  if (!guarded) {
    guarded = guardedCallback(what, fn, fallback);
    guards.set(fn, guarded);
  }
  return guarded;
}

/**
 * The app's own cost estimator, if any: one that throws, or answers what is no nano-USD, leaves the call to
 * the server's prices (a JavaScript app's 1.5 or promise, sent as the record's cost, got it refused whole).
 */
export function estimatorOf(options: WrapOptions): CostEstimator | undefined {
  const estimate = options.estimateCost;
  if (!estimate) return undefined;
  let checked = checkedEstimators.get(estimate);
  if (!checked) {
    checked = (call) => nanoUsdOf(estimate(call));
    checkedEstimators.set(estimate, checked);
  }
  return sharedGuard("estimateCost", checked, null);
}

const checkedEstimators = new WeakMap<CostEstimator, CostEstimator>();

/** An estimate as nano-USD: a bigint, or a whole number of them (a JavaScript app's), not below 0; null is none. */
function nanoUsdOf(estimate: unknown): bigint | null {
  if (estimate === null || estimate === undefined) return null;
  if (typeof estimate === "bigint" && estimate >= 0n) return estimate;
  if (typeof estimate === "number" && Number.isSafeInteger(estimate) && estimate >= 0)
    return BigInt(estimate);
  const what = typeof estimate === "object" ? Object.prototype.toString.call(estimate) : String(estimate);
  throw new TypeError(
    `it must return nano-USD as a bigint (or a whole number) not below 0, or null: it returned ${what}`,
  );
}

/**
 * When the records of `options` go to an exporter: its room() (a producer that can wait waits for its
 * queue to drain); a custom sink never asks anyone to wait.
 */
export function roomOf(options: WrapOptions): () => Promise<void> | null {
  if (options.sink) return () => null;
  const exporter = options.exporter;
  return exporter ? () => exporter.room() : () => defaultExporter().room();
}

/** Delivers everything recorded so far (await it before a serverless handler returns). */
export function flush(timeoutMs?: number): Promise<boolean> {
  return current ? current.flush(timeoutMs) : Promise.resolve(true);
}

export function shutdown(timeoutMs?: number): Promise<boolean> {
  return current ? current.shutdown(timeoutMs) : Promise.resolve(true);
}
