import { FIRST_LAYOUT_TOKEN_FIELDS, USAGE_FIELDS } from "../usage/types.js";
import {
  ATTRIBUTION_FIELDS,
  COST_FIELDS,
  COST_SOURCES,
  DATA_MODES,
  FIRST_LAYOUT_COST_FIELDS,
  KINDS,
  SCHEMA_VERSION,
  STATUSES,
} from "./call-record.js";
import { type CheckedCallRecordInput, INPUT_LIMITS as L, UUID_RE } from "./schema.js";

/**
 * The input schema's fast path. Validating a record with zod costs ~6 µs, most of the ingest budget; the
 * plain checks below take well under one. They pass only records zod accepts unchanged (apart from
 * defaults); anything they are unsure of (an ISO timestamp, a field out of bounds, an unknown key) is left
 * to zod, with its precise errors. A differential test holds the two together.
 */
type Check = (v: unknown) => boolean;

const text =
  (max: number, min = 1): Check =>
  (v) =>
    typeof v === "string" && v.length >= min && v.length <= max && v.isWellFormed();
const nullable =
  (check: Check): Check =>
  (v) =>
    v === null || check(v);
const int =
  (min: number, max: number): Check =>
  (v) =>
    typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;
const oneOf = (values: readonly unknown[]): Check => {
  const set = new Set(values);
  return (v) => set.has(v);
};
const bool: Check = (v) => typeof v === "boolean";
const NANO_RE = new RegExp(`^\\d{1,${L.nanoDigits}}$`);
const nanoNumber = int(0, Number.MAX_SAFE_INTEGER);
const nano: Check = (v) => (typeof v === "string" ? NANO_RE.test(v) : nanoNumber(v));
/** Epoch ms only: ISO strings are left to zod, which turns them into epoch ms. */
const epochMs = int(L.minTs, L.maxTs - 1);
const tokens = int(0, L.maxTokens);
const duration = int(0, L.maxDurationMs);
const optId = nullable(text(L.text));
const shortId = nullable(text(L.shortText));
const tag = text(L.tag);
const metadataValue = text(L.metadataValue, 0);

const tags: Check = (v) => Array.isArray(v) && v.length <= L.maxTags && v.every(tag);
const metadata: Check = (v) => {
  if (typeof v !== "object" || v === null || Object.getPrototypeOf(v) !== Object.prototype) return false;
  let n = 0;
  for (const k in v) {
    if (++n > L.maxMetadataKeys || !tag(k) || !metadataValue((v as Record<string, unknown>)[k])) return false;
  }
  // JSON.parse makes "__proto__" an own key, which passes as a tag: the schema refuses it.
  return !Object.hasOwn(v, "__proto__");
};

const CHECKS = new Map<string, Check>([
  ["schema_version", (v) => v === SCHEMA_VERSION],
  ["event_id", (v) => typeof v === "string" && UUID_RE.test(v)],
  ["workspace_id", shortId],
  ["trace_id", optId],
  ["span_id", optId],
  ["parent_span_id", optId],
  ["parent_event_id", nullable((v) => typeof v === "string" && UUID_RE.test(v))],
  ["ts_start", epochMs],
  ["ts_end", nullable(epochMs)],
  ["latency_ms", nullable(duration)],
  ["ttft_ms", nullable(duration)],
  ["kind", oneOf(KINDS)],
  ["provider", shortId],
  ["api", shortId],
  ["model_requested", optId],
  ["model", optId],
  ["stream", bool],
  ["service_tier", shortId],
  ["batch", bool],
  ["status", oneOf(STATUSES)],
  ["http_status", nullable(int(L.httpStatus.min, L.httpStatus.max))],
  ["error_type", optId],
  ["attempt", int(L.attempt.min, L.attempt.max)],
  ["request_id", optId],
  ...USAGE_FIELDS.map((f): [string, Check] => [f, tokens]),
  ["usage_raw", () => true],
  ["cost_nanousd", nano],
  ...COST_FIELDS.map((f): [string, Check] => [f, nano]),
  ["cost_source", oneOf(COST_SOURCES)],
  ["price_ref", optId],
  ["priced", bool],
  ...ATTRIBUTION_FIELDS.map((f): [string, Check] => [f, optId]),
  ["tags", tags],
  ["metadata", metadata],
  ["data_mode", oneOf(DATA_MODES)],
  ["key_id", shortId],
]);

const MONEY_FIELDS: ReadonlySet<string> = new Set(["cost_nanousd", ...COST_FIELDS]);
const MAX_INT64 = 2n ** 63n - 1n;
/** Money as a built record holds it: a bigint the stores' int64 columns take. */
const storedMoney: Check = (v) => typeof v === "bigint" && v >= 0n && v <= MAX_INT64;
/**
 * What every built record has, of every version since the first: the stores' NOT NULL columns (a spool line
 * whose key a damaged byte renamed lacks one, and would fail every commit it is in). Counts and costs added
 * later are not here: a spooled record of an older version lacks them, and the spool reads them back as 0.
 */
const STORED_REQUIRED = [
  "schema_version",
  "event_id",
  "workspace_id",
  "ts_start",
  "kind",
  "provider",
  "model",
  "stream",
  "batch",
  "status",
  "attempt",
  ...FIRST_LAYOUT_TOKEN_FIELDS,
  "cost_nanousd",
  ...FIRST_LAYOUT_COST_FIELDS,
  "cost_source",
  "price_ref",
  "priced",
  "data_mode",
] as const;

/**
 * Where a built record may be outside its input's bounds: a tool, agent or other call may name no provider
 * or model (""), and an unpriced call's price_ref repeats its model name (up to 256 characters) after its
 * provider. The store takes any text there.
 */
const STORED_CHECKS = new Map<string, Check>([
  ...CHECKS,
  ["provider", text(L.shortText, 0)],
  ["model", text(L.text, 0)],
  ["price_ref", (v) => typeof v === "string" && v.isWellFormed()],
]);

/**
 * The first field of a built call record read back from outside the store (a spool file) that is not as
 * the builder makes it, or null when the record is sound. A record the store would refuse (an event id
 * that is no UUID, a count that is no integer) must be found before it goes to the store with others.
 * Fields a record of an older version lacks are let through (those every version wrote are required);
 * unknown ones are ignored.
 */
export function storedRecordProblem(record: object): string | null {
  const fields = record as Record<string, unknown>;
  for (const key of STORED_REQUIRED) if (fields[key] == null) return key;
  for (const [key, check] of STORED_CHECKS) {
    const v = fields[key];
    if (v !== undefined && !(MONEY_FIELDS.has(key) ? storedMoney : check)(v)) return key;
  }
  return null;
}

/** The input fields the fast path knows: a test checks they are exactly the schema's. */
export const FAST_CHECK_FIELDS: readonly string[] = [...CHECKS.keys()];

/**
 * True when CallRecordInputSchema would accept the record as it is (no defaults filled in, no timestamps
 * to convert); false when zod must decide.
 */
export function passesFastCheck(input: unknown): input is CheckedCallRecordInput {
  if (typeof input !== "object" || input === null || Object.getPrototypeOf(input) !== Object.prototype)
    return false;
  const fields = input as Record<string, unknown>;
  return fieldsPassFastCheck(fields) && fields.event_id !== undefined && fields.ts_start !== undefined;
}

/** True when every field present is one the schema would take as it is (required ones may be missing). */
export function fieldsPassFastCheck(fields: Record<string, unknown>): boolean {
  // An own "__proto__" key (JSON.parse makes one) has no check: it goes to zod, which refuses it.
  for (const key in fields) {
    const check = CHECKS.get(key);
    if (check === undefined) return false; // unknown, even when undefined: the schema is strict
    const v = fields[key];
    if (v !== undefined && !check(v)) return false;
  }
  return true;
}
