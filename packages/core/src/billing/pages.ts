import { UsageError } from "../usage/errors.js";
import { isObject, type JsonObject } from "../usage/read.js";
import type { NormalizedUsage } from "../usage/types.js";
import { BillingError } from "./errors.js";

/** One result of a bucketed billing report, with its bucket's time range (ISO 8601, UTC). */
export interface BucketResult {
  starting_at: string;
  ending_at: string;
  /** The provider's result object, verbatim: dimensions (model, project, line item...) are read from it. */
  result: JsonObject;
  /** Path of the result in the page, for error messages. */
  field: string;
}

/**
 * Walks `{data: [{<start>, <end>, results: [...]}]}`, the page shape shared by the OpenAI
 * organization Usage/Costs APIs (unix seconds `start_time`/`end_time`) and the Anthropic Admin
 * usage/cost reports (ISO `starting_at`/`ending_at`).
 */
export function bucketResults(page: unknown): BucketResult[] {
  if (!isObject(page)) throw new BillingError("", "report page is not a JSON object");
  if (!Array.isArray(page.data)) throw new BillingError("data", "expected an array of buckets");
  const rows: BucketResult[] = [];
  page.data.forEach((bucket, i) => {
    const field = `data[${i}]`;
    if (!isObject(bucket)) throw new BillingError(field, "expected a bucket object");
    const starting_at = bucketTime(bucket, "starting_at", "start_time", field);
    const ending_at = bucketTime(bucket, "ending_at", "end_time", field);
    if (!Array.isArray(bucket.results)) throw new BillingError(`${field}.results`, "expected an array");
    bucket.results.forEach((result, j) => {
      const resultField = `${field}.results[${j}]`;
      if (!isObject(result)) throw new BillingError(resultField, "expected a result object");
      rows.push({ starting_at, ending_at, result, field: resultField });
    });
  });
  return rows;
}

function bucketTime(bucket: JsonObject, isoKey: string, unixKey: string, field: string): string {
  const iso = bucket[isoKey];
  if (typeof iso === "string") return iso;
  const unix = bucket[unixKey];
  if (typeof unix === "number" && Number.isSafeInteger(unix)) return new Date(unix * 1000).toISOString();
  throw new BillingError(`${field}.${isoKey}`, `bucket has no ${isoKey} / ${unixKey}`);
}

/** Both providers report USD only; anything else must not be added to nano-USD sums. */
export function checkUsd(currency: unknown, field: string): void {
  if (typeof currency !== "string" || currency.toLowerCase() !== "usd") {
    throw new BillingError(field, `unsupported currency ${JSON.stringify(currency)}`);
  }
}

export interface UsageRow extends Omit<BucketResult, "field"> {
  usage: NormalizedUsage;
}

export interface CostRow extends Omit<BucketResult, "field"> {
  amount_nanousd: bigint;
}

/** Prefixes a UsageError with the result's position in the page. */
export function normalizeAt(
  field: string,
  result: unknown,
  normalize: (r: unknown) => NormalizedUsage,
): NormalizedUsage {
  try {
    return normalize(result);
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${field}.${error.field}`, error.message);
    throw error;
  }
}
