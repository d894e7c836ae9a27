import { MAX_BATCH_RECORDS } from "../body.js";

/**
 * An OTLP trace export as both decoders (protobuf and JSON) hand it to the mapping: only what Tollgate
 * reads, in one shape, with ids as lowercase hex and times as exact nanoseconds.
 */

/** An OTLP AnyValue: int64 beyond 2^53 stays a bigint, bytes stay bytes, kvlists are maps. */
export type AttrValue = string | number | boolean | bigint | Uint8Array | null | AttrValue[] | AttrMap;
/**
 * Attributes by key, in an ordinary object: the spans of one instrumentation share its shape, which makes
 * it far cheaper to build than a Map (it was a large part of the decode time). Only fixed attribute
 * names are read from it; "__proto__" is never a key (setAttr drops it).
 */
export interface AttrMap {
  [key: string]: AttrValue;
}

export function setAttr(m: AttrMap, key: string, value: AttrValue): void {
  if (key !== "__proto__") m[key] = value;
}

export interface DecodedSpan {
  /** Lowercase hex as sent ("" when absent); the mapping checks lengths. */
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind (0 unspecified … 5 consumer). */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: AttrMap;
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
}

export interface DecodedResourceSpans {
  resource: AttrMap;
  spans: DecodedSpan[];
}

export type DecodedExport = DecodedResourceSpans[];

export const STATUS_ERROR = 2;

/** The body is not an OTLP ExportTraceServiceRequest (answered 400, nothing stored). */
export class OtlpDecodeError extends Error {}

/**
 * The export holds more than an export may (answered 413, nothing stored). Thrown while decoding, at the
 * limit: a small gzip body inflates to tens of millions of empty spans, too many to decode and then count.
 */
export class OtlpTooLarge extends Error {}

export class OtlpTooManySpans extends OtlpTooLarge {
  constructor(what: "spans" | "resourceSpans" | "scopeSpans") {
    super(`an export holds at most ${MAX_BATCH_RECORDS} ${what}; lower the exporter's batch size`);
  }
}

/** Nesting allowed inside one attribute value (arrays/kvlists): real instrumentations use one or two. */
export const MAX_VALUE_DEPTH = 16;
