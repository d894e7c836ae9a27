import {
  ExportTraceServiceRequest,
  type LongBits,
  type PbAnyValue,
  type PbExportRequest,
  type PbKeyValue,
} from "./otlp-proto.js";
import {
  type AttrMap,
  type AttrValue,
  type DecodedExport,
  MAX_VALUE_DEPTH,
  OtlpDecodeError,
  setAttr,
} from "./spans.js";

/** Decodes an OTLP/HTTP protobuf body into the shape the mapping reads. */
export function decodeProtobufExport(bytes: Uint8Array): DecodedExport {
  let msg: PbExportRequest;
  try {
    msg = ExportTraceServiceRequest.decode(bytes) as unknown as PbExportRequest;
  } catch (e) {
    throw new OtlpDecodeError(`not a protobuf ExportTraceServiceRequest: ${(e as Error).message}`);
  }
  return msg.resourceSpans.map((rs) => ({
    resource: attributes(rs.resource?.attributes ?? [], 0),
    spans: rs.scopeSpans.flatMap((ss) =>
      ss.spans.map((s) => ({
        traceId: hex(s.traceId),
        spanId: hex(s.spanId),
        parentSpanId: hex(s.parentSpanId),
        name: s.name,
        kind: s.kind,
        startNs: nanos(s.startTimeUnixNano),
        endNs: nanos(s.endTimeUnixNano),
        attributes: attributes(s.attributes, 0),
        statusCode: s.status?.code ?? 0,
        statusMessage: s.status?.message ?? "",
      })),
    ),
  }));
}

/** An id as hex; an absent bytes field decodes to protobufjs's shared empty default (not a Uint8Array). */
function hex(b: Uint8Array): string {
  return b.length ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex") : "";
}

/** fixed64 nanoseconds exactly, from a Long's two 32-bit halves (or a number where protobufjs gave one). */
function nanos(v: LongBits | number): bigint {
  if (typeof v === "number") return BigInt(v);
  return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
}

/** An int64 attribute: a number when it fits 2^53 (token counts always do), a bigint otherwise. */
function int64(v: LongBits | number): number | bigint {
  if (typeof v === "number") return v;
  if (v.high === 0) return v.low >>> 0; // the common case, no bigint work
  const n = BigInt.asIntN(64, (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0));
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function attributes(kvs: readonly PbKeyValue[], depth: number): AttrMap {
  const m: AttrMap = {};
  for (let i = 0; i < kvs.length; i++) setAttr(m, kvs[i]!.key, anyValue(kvs[i]!.value, depth));
  return m;
}

const has = (v: object, member: keyof PbAnyValue) => Object.hasOwn(v, member);

function anyValue(v: PbAnyValue | null | undefined, depth: number): AttrValue {
  if (!v) return null;
  if (has(v, "stringValue")) return v.stringValue!;
  if (has(v, "intValue")) return int64(v.intValue!);
  if (has(v, "doubleValue")) return v.doubleValue!;
  if (has(v, "boolValue")) return v.boolValue!;
  if (has(v, "arrayValue")) {
    checkDepth(depth);
    return (v.arrayValue?.values ?? []).map((x) => anyValue(x, depth + 1));
  }
  if (has(v, "kvlistValue")) {
    checkDepth(depth);
    return attributes(v.kvlistValue?.values ?? [], depth + 1);
  }
  if (has(v, "bytesValue")) return v.bytesValue!;
  return null; // an empty AnyValue
}

function checkDepth(depth: number): void {
  if (depth >= MAX_VALUE_DEPTH)
    throw new OtlpDecodeError(`an attribute value is nested deeper than ${MAX_VALUE_DEPTH} levels`);
}
