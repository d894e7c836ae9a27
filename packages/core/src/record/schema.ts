import { z } from "zod";
import { TOKEN_FIELDS, TOOL_CALL_FIELDS } from "../usage/types.js";
import {
  ATTRIBUTION_FIELDS,
  type AttributionField,
  type CallRecord,
  COST_FIELDS,
  COST_SOURCES,
  type CostField,
  DATA_MODES,
  KINDS,
  SCHEMA_VERSION,
  STATUSES,
} from "./call-record.js";

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

/**
 * A whole number. Not zod's int(): it fails a fraction as a wrong *type*, so a union of a number and a
 * string (times, money) answered a fraction only "Invalid input"; and it fails an integer past 2^53 as
 * "not an integer", which it is.
 */
const wholeNumber = (message: string) => z.number().refine(Number.isInteger, message);

/** Epoch ms (integer) or an ISO-8601 date-time with offset; normalized to epoch ms. */
const timestamp = z
  .union(
    [
      wholeNumber("epoch milliseconds must be an integer"),
      z.iso.datetime({
        offset: true,
        error: "must be an ISO-8601 date-time with a time zone, or epoch milliseconds",
      }),
    ],
    { error: "must be epoch milliseconds (an integer) or an ISO-8601 date-time with a time zone" },
  )
  .transform((v) => (typeof v === "number" ? v : Date.parse(v)))
  .refine((ms) => ms >= L.minTs && ms < L.maxTs, "must be between 2000-01-01 and 2100-01-01");

/** Integer nano-USD as a JSON integer or a digit string (int64). */
const nanoAmount = z.union(
  [
    wholeNumber("must be an integer number of nano-USD")
      .refine((n) => n >= 0, "must not be negative")
      .refine((n) => n <= Number.MAX_SAFE_INTEGER, "exceeds 2^53; send it as a string"),
    z
      .string()
      .regex(
        new RegExp(`^\\d{1,${L.nanoDigits}}$`),
        `must be a non-negative integer of at most ${L.nanoDigits} digits`,
      ),
  ],
  {
    error: `must be an integer number of nano-USD: a JSON integer up to 2^53, or a string of at most ${L.nanoDigits} digits`,
  },
);

const durationMs = z
  .number()
  .int("must be an integer")
  .nonnegative("must not be negative")
  .max(L.maxDurationMs, "must be at most 7 days");

const toolCalls = z
  .number({ error: "must be a number of tool calls" })
  .int("must be an integer")
  .nonnegative("must not be negative")
  .max(L.maxTokens, `must be at most ${L.maxTokens}`);
const milliseconds = z
  .number({ error: "must be a number of milliseconds" })
  .int("must be an integer")
  .nonnegative("must not be negative")
  .max(L.maxTokens, `must be at most ${L.maxTokens}`);
const characters = z
  .number({ error: "must be a number of characters" })
  .int("must be an integer")
  .nonnegative("must not be negative")
  .max(L.maxTokens, `must be at most ${L.maxTokens}`);
const usageShape = {
  ...(Object.fromEntries(TOKEN_FIELDS.map((f) => [f, tokens.optional()])) as Record<
    (typeof TOKEN_FIELDS)[number],
    z.ZodOptional<typeof tokens>
  >),
  ...(Object.fromEntries(TOOL_CALL_FIELDS.map((f) => [f, toolCalls.optional()])) as Record<
    (typeof TOOL_CALL_FIELDS)[number],
    z.ZodOptional<typeof toolCalls>
  >),
  input_audio_ms: milliseconds.optional(),
  input_characters: characters.optional(),
};
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
  parent_event_id: z
    .string()
    .regex(UUID_RE, "must be the UUID of the call this one was made within")
    .nullish(),
  ts_start: timestamp,
  ts_end: timestamp.nullish(),
  latency_ms: durationMs.nullish(),
  ttft_ms: durationMs.nullish(),
  kind: z.enum(KINDS).default(INPUT_DEFAULTS.kind),
  provider: optId(L.shortText),
  api: optId(L.shortText),
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
