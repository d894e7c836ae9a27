import { ApiError, badRequest } from "../errors.js";

export const MAX_BATCH_RECORDS = 10_000;
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes a POST /v1/events body: strict UTF-8, JSON, an array of records (or `{"events": [...]}`),
 * at most MAX_BATCH_RECORDS. Anything else is a 4xx that says exactly what is wrong.
 */
export function parseBatchBody(bytes: Uint8Array): unknown[] {
  if (bytes.byteLength > MAX_BODY_BYTES) throw tooLarge();
  if (bytes.byteLength === 0)
    throw badRequest("empty_body", "request body is empty: send a JSON array of call records");
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw badRequest(
      "invalid_utf8",
      `request body is not valid UTF-8 (at or after byte ${firstBadUtf8(bytes)})`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw badRequest("invalid_json", `request body is not valid JSON: ${(e as Error).message}`);
  }
  const items = Array.isArray(doc) ? doc : isObject(doc) && Array.isArray(doc.events) ? doc.events : null;
  if (!items)
    throw badRequest(
      "invalid_batch",
      'body must be a JSON array of call records, or {"events": [...]}',
      "events",
    );
  if (items.length === 0) throw badRequest("empty_batch", "the batch has no records", "events");
  if (items.length > MAX_BATCH_RECORDS)
    throw new ApiError(
      413,
      "invalid_request_error",
      "batch_too_large",
      `a batch holds at most ${MAX_BATCH_RECORDS} records, got ${items.length}; split it`,
      "events",
    );
  return items;
}

export function tooLarge(advice = "send smaller batches"): ApiError {
  return new ApiError(
    413,
    "invalid_request_error",
    "body_too_large",
    `request body exceeds ${MAX_BODY_BYTES} bytes; ${advice}`,
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function firstBadUtf8(bytes: Uint8Array): number {
  let lo = 0;
  let hi = bytes.byteLength;
  // Binary search for the shortest prefix that fails to decode.
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, mid + 1), { stream: true });
      lo = mid + 1;
    } catch {
      hi = mid;
    }
  }
  return lo;
}
