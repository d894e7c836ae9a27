import { z } from "zod";
import { COST_CATEGORIES, type CostCategory } from "../pricing/cost.js";
import { type NormalizedUsage, USAGE_FIELDS } from "../usage/types.js";

/** Bumped when the stored shape changes; stores migrate older rows forward. */
export const SCHEMA_VERSION = 1;

export const KINDS = ["llm", "embedding", "tool", "agent", "other"] as const;
export type Kind = (typeof KINDS)[number];
/**
 * Model calls (llm, embedding) need a provider and a model and are priced. The other kinds are trace
 * structure around them (tools, agent steps, anything else): provider and model are optional (stored as
 * ""), and the engine never prices them: a tool span is not a coverage gap, and usage that an agent span
 * re-states from its children is never counted twice.
 */
export const isInferenceKind = (kind: Kind): boolean => kind === "llm" || kind === "embedding";

/** price_ref of a record the engine did not price because it is not a model call (tool/agent/other). */
export const PRICE_REF_NOT_A_MODEL_CALL = "none";
/**
 * price_ref of a successful model call that reported no usage at all: its cost is unknown (priced=false,
 * cost 0 is not presented as real), but it is not a model without a price either.
 */
export const PRICE_REF_NO_USAGE = "no_usage";
export const STATUSES = ["ok", "error", "blocked", "killed"] as const;
export const COST_SOURCES = ["computed", "reported", "estimated"] as const;
export const DATA_MODES = ["real", "demo", "test"] as const;

/** Attribution fields a record can be filtered and grouped by (DESIGN.md "attribution"). */
export const ATTRIBUTION_FIELDS = [
  "user_id",
  "customer_id",
  "feature",
  "deployment",
  "prompt_version",
  "agent_run_id",
  "agent_type",
  "session_id",
  "route",
  "variant",
] as const;
export type AttributionField = (typeof ATTRIBUTION_FIELDS)[number];

export type CostField = `cost_${CostCategory}_nanousd`;
export const COST_FIELDS = COST_CATEGORIES.map((c) => `cost_${c}_nanousd` as CostField);

/** One billed LLM call or span, as stored: usage normalized and disjoint, money in integer nano-USD. */
export interface CallRecord extends NormalizedUsage, Record<CostField, bigint> {
  schema_version: number;
  event_id: string;
  workspace_id: string;
  trace_id: string | null;
  span_id: string | null;
  parent_span_id: string | null;
  /** Epoch milliseconds, UTC. */
  ts_start: number;
  ts_end: number | null;
  latency_ms: number | null;
  ttft_ms: number | null;
  kind: Kind;
  /** "" for tool/agent/other records that name no provider. */
  provider: string;
  api: string | null;
  model_requested: string | null;
  /** "" for tool/agent/other records that name no model. */
  model: string;
  stream: boolean;
  service_tier: string | null;
  batch: boolean;
  status: (typeof STATUSES)[number];
  http_status: number | null;
  error_type: string | null;
  attempt: number;
  request_id: string | null;
  usage_raw: unknown;
  cost_nanousd: bigint;
  cost_source: (typeof COST_SOURCES)[number];
  price_ref: string;
  priced: boolean;
  user_id: string | null;
  customer_id: string | null;
  feature: string | null;
  deployment: string | null;
  prompt_version: string | null;
  agent_run_id: string | null;
  agent_type: string | null;
  session_id: string | null;
  route: string | null;
  variant: string | null;
  tags: string[];
  metadata: Record<string, string>;
  data_mode: (typeof DATA_MODES)[number];
  /** The Tollgate key the call came through (gateway key id), for key-scoped limits. */
  key_id: string | null;
}

// ---- input schema: what clients send to POST /v1/events (one element of the batch) ----

/** The bounds of the input schema, shared with its fast path (fast-check.ts). */
export const INPUT_LIMITS = {
  /** 1e12: far above any real call, well inside int64 and 2^53. */
  maxTokens: 1_000_000_000_000,
  minTs: Date.UTC(2000, 0, 1),
  maxTs: Date.UTC(2100, 0, 1),
  maxDurationMs: 86_400_000 * 7,
  /** UTF-16 units of ids and names; `shortText` for workspace, provider, api, service tier and key ids. */
  text: 256,
  shortText: 64,
  tag: 128,
  maxTags: 64,
  metadataValue: 2048,
  maxMetadataKeys: 64,
  attempt: { min: 1, max: 1000 },
  httpStatus: { min: 100, max: 599 },
  /** Digits of a nano-USD amount sent as a string. */
  nanoDigits: 18,
} as const;
const L = INPUT_LIMITS;

/** What an absent field means; applied by zod here and by the record builder after the fast check. */
export const INPUT_DEFAULTS = {
  kind: "llm",
  stream: false,
  batch: false,
  status: "ok",
  attempt: 1,
  data_mode: "real",
} as const satisfies Partial<Record<keyof CallRecord, unknown>>;

export const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** Text stored as sent: a lone UTF-16 surrogate (legal as a JSON escape) cannot be, so it is refused. */
const text = (max: number) =>
  z
    .string()
    .max(max, `must be at most ${max} characters`)
    .refine((s) => s.isWellFormed(), "must be valid Unicode (no lone surrogate escapes)");
const id = (max: number = L.text) => text(max).min(1, "must not be empty");
const optId = (max: number = L.text) => id(max).nullish();
const tokens = z
  .number({ error: "must be a number of tokens" })
  .int("must be an integer")
  .nonnegative("must not be negative")
  .max(L.maxTokens, `must be at most ${L.maxTokens}`);

/** Epoch ms (integer) or an ISO-8601 date-time with offset; normalized to epoch ms. */
const timestamp = z
  .union([
    z.number().int("epoch milliseconds must be an integer"),
    z.iso.datetime({
      offset: true,
      error: "must be an ISO-8601 date-time with a time zone, or epoch milliseconds",
    }),
  ])
  .transform((v) => (typeof v === "number" ? v : Date.parse(v)))
  .refine((ms) => ms >= L.minTs && ms < L.maxTs, "must be between 2000-01-01 and 2100-01-01");

/** Integer nano-USD as a JSON integer or a digit string (int64). */
const nanoAmount = z.union([
  z
    .number()
    .int("must be an integer number of nano-USD")
    .nonnegative("must not be negative")
    .max(Number.MAX_SAFE_INTEGER, "exceeds 2^53; send it as a string"),
  z
    .string()
    .regex(
      new RegExp(`^\\d{1,${L.nanoDigits}}$`),
      `must be a non-negative integer of at most ${L.nanoDigits} digits`,
    ),
]);

const durationMs = z
  .number()
  .int("must be an integer")
  .nonnegative("must not be negative")
  .max(L.maxDurationMs, "must be at most 7 days");

const usageShape = Object.fromEntries(USAGE_FIELDS.map((f) => [f, tokens.optional()])) as Record<
  (typeof USAGE_FIELDS)[number],
  z.ZodOptional<typeof tokens>
>;
const costShape = Object.fromEntries(COST_FIELDS.map((f) => [f, nanoAmount.optional()])) as Record<
  CostField,
  z.ZodOptional<typeof nanoAmount>
>;
const attributionShape = Object.fromEntries(ATTRIBUTION_FIELDS.map((f) => [f, optId()])) as Record<
  AttributionField,
  ReturnType<typeof optId>
>;

export const CallRecordInputSchema = z.strictObject({
  schema_version: z.literal(SCHEMA_VERSION, { error: `must be ${SCHEMA_VERSION} (or omitted)` }).optional(),
  // A plain pattern instead of z.uuid(): any RFC 9562 layout is fine, and it is ~20x cheaper per record.
  event_id: z.string().regex(UUID_RE, "must be a UUID (v7 recommended); it makes retries idempotent"),
  workspace_id: optId(L.shortText),
  trace_id: optId(),
  span_id: optId(),
  parent_span_id: optId(),
  ts_start: timestamp,
  ts_end: timestamp.nullish(),
  latency_ms: durationMs.nullish(),
  ttft_ms: durationMs.nullish(),
  kind: z.enum(KINDS).default(INPUT_DEFAULTS.kind),
  provider: optId(L.shortText),
  api: z.string().min(1).max(L.shortText).nullish(),
  model_requested: optId(),
  model: optId(),
  stream: z.boolean().default(INPUT_DEFAULTS.stream),
  service_tier: optId(L.shortText),
  batch: z.boolean().default(INPUT_DEFAULTS.batch),
  status: z.enum(STATUSES).default(INPUT_DEFAULTS.status),
  http_status: z.number().int().min(L.httpStatus.min).max(L.httpStatus.max).nullish(),
  error_type: optId(),
  attempt: z.number().int().min(L.attempt.min).max(L.attempt.max).default(INPUT_DEFAULTS.attempt),
  request_id: optId(),
  ...usageShape,
  usage_raw: z.unknown().optional(),
  cost_nanousd: nanoAmount.optional(),
  ...costShape,
  cost_source: z.enum(COST_SOURCES).optional(),
  price_ref: optId(),
  priced: z.boolean().optional(),
  ...attributionShape,
  tags: z.array(id(L.tag)).max(L.maxTags, `at most ${L.maxTags} tags`).default([]),
  metadata: z.preprocess(
    (v, ctx) => {
      // JSON.parse makes "__proto__" an own key; zod's record parser would drop it silently.
      if (typeof v === "object" && v !== null && Object.hasOwn(v, "__proto__"))
        ctx.addIssue({ code: "custom", message: '"__proto__" is not allowed as a key', input: v });
      return v;
    },
    z
      .record(id(L.tag), text(L.metadataValue))
      .refine((m) => Object.keys(m).length <= L.maxMetadataKeys, `at most ${L.maxMetadataKeys} keys`)
      .default({}),
  ),
  data_mode: z.enum(DATA_MODES).default(INPUT_DEFAULTS.data_mode),
  key_id: optId(L.shortText),
});
export type CallRecordInput = z.input<typeof CallRecordInputSchema>;
export type ParsedCallRecordInput = z.output<typeof CallRecordInputSchema>;
/**
 * A record that passed validation, by zod (defaults filled in) or by its fast check (fields as sent):
 * the defaulted fields and tags/metadata may still be absent.
 */
export type CheckedCallRecordInput = Omit<ParsedCallRecordInput, DefaultedField> &
  Partial<Pick<ParsedCallRecordInput, DefaultedField>>;
type DefaultedField = keyof typeof INPUT_DEFAULTS | "tags" | "metadata";
