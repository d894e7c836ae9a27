import { z } from "zod";
import { MAX_BATCH_RECORDS } from "../body.js";
import {
  type AttrMap,
  type AttrValue,
  type DecodedExport,
  MAX_VALUE_DEPTH,
  OtlpDecodeError,
  OtlpTooLarge,
  OtlpTooManySpans,
  setAttr,
} from "./spans.js";

/**
 * An integral JSON number, however large: zod's int() takes safe integers only, but a 64-bit value sent as
 * a number (the mapping allows it; every nanosecond time is past 2^53) arrives as an integral double.
 */
const integral = (message: string) => z.number().refine(Number.isInteger, message);

/**
 * OTLP/HTTP JSON (the protobuf JSON mapping): lowerCamelCase names, trace/span ids as hex, int64 as a
 * decimal string or a number, enums as integers. Unknown fields are ignored, as the spec asks; fields of
 * the wrong type are refused with their path.
 */
const int64 = z.union([
  z.string().regex(/^-?\d{1,20}$/, "must be an integer (int64 as a decimal string)"),
  integral("must be an integer"),
]);
const uint64 = z.union([
  z.string().regex(/^\d{1,20}$/, "must be a non-negative integer (uint64 as a decimal string)"),
  integral("must be an integer").refine((n) => n >= 0, "must not be negative"),
]);
const keyValue = z.object({ key: z.string(), value: z.unknown().optional() });
const attributes = z.array(keyValue).optional();
const span = z.object({
  traceId: z.string().optional(),
  spanId: z.string().optional(),
  parentSpanId: z.string().optional(),
  name: z.string().optional(),
  kind: z.number().int().optional(),
  startTimeUnixNano: uint64.optional(),
  endTimeUnixNano: uint64.optional(),
  attributes,
  status: z.object({ code: z.number().int().optional(), message: z.string().optional() }).nullish(),
});
const ExportSchema = z.object({
  resourceSpans: z
    .array(
      z.object({
        resource: z.object({ attributes }).nullish(),
        scopeSpans: z.array(z.object({ spans: z.array(span).optional() })).optional(),
      }),
    )
    .optional(),
});

type KeyValue = z.infer<typeof keyValue>;

/**
 * Objects and arrays a JSON export may hold. JSON.parse's time goes by them, not by bytes: 58 KB of gzip
 * inflate to 20 million empty spans (60 MB), 20 s of parsing on the event loop. Two million is 10,000
 * spans of 100 attributes each (two objects an attribute), and parses in well under a second.
 */
export const MAX_JSON_CONTAINERS = 2_000_000;

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function decodeJsonExport(body: Uint8Array): DecodedExport {
  checkContainers(body);
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new OtlpDecodeError("the JSON body is not valid UTF-8");
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new OtlpDecodeError(`not JSON: ${(e as Error).message}`);
  }
  checkSize(doc);
  const parsed = ExportSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new OtlpDecodeError(`${issue.path.join(".") || "(body)"}: ${issue.message}`);
  }
  return (parsed.data.resourceSpans ?? []).map((rs, i) => ({
    resource: attrs(rs.resource?.attributes, `resourceSpans.${i}.resource.attributes`, 0),
    spans: (rs.scopeSpans ?? []).flatMap((ss, j) =>
      (ss.spans ?? []).map((s, k) => ({
        traceId: (s.traceId ?? "").toLowerCase(),
        spanId: (s.spanId ?? "").toLowerCase(),
        parentSpanId: (s.parentSpanId ?? "").toLowerCase(),
        name: s.name ?? "",
        kind: s.kind ?? 0,
        startNs: BigInt(s.startTimeUnixNano ?? 0),
        endNs: BigInt(s.endTimeUnixNano ?? 0),
        attributes: attrs(s.attributes, `resourceSpans.${i}.scopeSpans.${j}.spans.${k}.attributes`, 0),
        statusCode: s.status?.code ?? 0,
        statusMessage: s.status?.message ?? "",
      })),
    ),
  }));
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const BRACE = 0x7b;
const BRACKET = 0x5b;

/**
 * Refuses a body of more than MAX_JSON_CONTAINERS objects and arrays before JSON.parse builds them: one
 * pass over the bytes, strings skipped (a prompt's braces are text). UTF-8 continuation bytes are never
 * ASCII, so bytes do. Whether the body is JSON at all is left to JSON.parse.
 */
function checkContainers(body: Uint8Array): void {
  let containers = 0;
  for (let i = 0; i < body.length; i++) {
    const b = body[i];
    if (b === QUOTE) {
      for (i++; i < body.length && body[i] !== QUOTE; i++) if (body[i] === BACKSLASH) i++;
    } else if ((b === BRACE || b === BRACKET) && ++containers > MAX_JSON_CONTAINERS)
      throw new OtlpTooLarge(
        `a JSON export holds at most ${MAX_JSON_CONTAINERS} objects and arrays (spans, attributes and their values); lower the exporter's batch size`,
      );
  }
}

/**
 * Refuses an export of more than MAX_BATCH_RECORDS spans (or scopes, or resources) before it is validated
 * and copied. What is not an array here is left to the schema to refuse.
 */
function checkSize(doc: unknown): void {
  const resources = isObject(doc) ? doc.resourceSpans : undefined;
  if (!Array.isArray(resources)) return;
  if (resources.length > MAX_BATCH_RECORDS) throw new OtlpTooManySpans("resourceSpans");
  let scopeCount = 0;
  let spans = 0;
  for (const rs of resources) {
    const scopes = isObject(rs) ? rs.scopeSpans : undefined;
    if (!Array.isArray(scopes)) continue;
    scopeCount += scopes.length;
    if (scopeCount > MAX_BATCH_RECORDS) throw new OtlpTooManySpans("scopeSpans");
    for (const ss of scopes) {
      const list = isObject(ss) ? ss.spans : undefined;
      if (Array.isArray(list)) spans += list.length;
    }
    if (spans > MAX_BATCH_RECORDS) throw new OtlpTooManySpans("spans");
  }
}

function attrs(kvs: readonly KeyValue[] | undefined, path: string, depth: number): AttrMap {
  const m: AttrMap = {};
  kvs?.forEach((kv, i) => {
    setAttr(m, kv.key, anyValue(kv.value, `${path}.${i}.value`, depth));
  });
  return m;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** One AnyValue: exactly one of its members (none = empty value). */
function anyValue(v: unknown, path: string, depth: number): AttrValue {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) throw new OtlpDecodeError(`${path}: must be an AnyValue object`);
  const bad = (member: string, what: string) => new OtlpDecodeError(`${path}.${member}: must be ${what}`);
  if ("stringValue" in v) {
    if (typeof v.stringValue !== "string") throw bad("stringValue", "a string");
    return v.stringValue;
  }
  if ("boolValue" in v) {
    if (typeof v.boolValue !== "boolean") throw bad("boolValue", "a boolean");
    return v.boolValue;
  }
  if ("intValue" in v) {
    const n = int64.safeParse(v.intValue);
    if (!n.success) throw bad("intValue", "an integer (int64 as a decimal string or a number)");
    const big = BigInt(n.data);
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(big)
      : big;
  }
  if ("doubleValue" in v) {
    const d = v.doubleValue;
    // The protobuf JSON mapping spells non-finite doubles as strings.
    if (d === "NaN" || d === "Infinity" || d === "-Infinity") return Number(d);
    if (typeof d !== "number") throw bad("doubleValue", "a number");
    return d;
  }
  if ("bytesValue" in v) {
    if (typeof v.bytesValue !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v.bytesValue))
      throw bad("bytesValue", "base64 text");
    return new Uint8Array(Buffer.from(v.bytesValue, "base64"));
  }
  if ("arrayValue" in v || "kvlistValue" in v) {
    if (depth >= MAX_VALUE_DEPTH)
      throw new OtlpDecodeError(`${path}: nested deeper than ${MAX_VALUE_DEPTH} levels`);
    const member = "arrayValue" in v ? "arrayValue" : "kvlistValue";
    const inner = v[member];
    const values = isObject(inner) ? (inner.values ?? []) : null;
    if (!Array.isArray(values)) throw bad(member, '{"values": [...]}');
    if (member === "arrayValue")
      return values.map((x, i) => anyValue(x, `${path}.arrayValue.values.${i}`, depth + 1));
    const kvs = z.array(keyValue).safeParse(values);
    if (!kvs.success) throw bad("kvlistValue", '{"values": [{"key", "value"}, ...]}');
    return attrs(kvs.data, `${path}.kvlistValue.values`, depth + 1);
  }
  return null;
}
