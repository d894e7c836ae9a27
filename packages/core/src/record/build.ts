import type { z } from "zod";
import type { PriceResult, PricingEngine } from "../pricing/engine.js";
import { servedAsOf } from "../pricing/served-as.js";
import { normalizeUsage, UsageError } from "../usage/index.js";
import {
  APIS,
  type Api,
  emptyUsage,
  MEASURE_FIELDS,
  type NormalizedUsage,
  TOKEN_FIELDS,
  TOOL_CALL_FIELDS,
  USAGE_FIELDS,
} from "../usage/types.js";
import {
  type CallRecord,
  COST_FIELDS,
  isInferenceKind,
  PRICE_REF_NO_USAGE,
  PRICE_REF_NOT_A_MODEL_CALL,
  SCHEMA_VERSION,
} from "./call-record.js";
import { passesFastCheck } from "./fast-check.js";
import { CallRecordInputSchema, type CheckedCallRecordInput, INPUT_DEFAULTS } from "./schema.js";

/** Why one field of one record was refused. */
export interface FieldError {
  field: string;
  reason: string;
}

export type BuildResult = { ok: true; record: CallRecord } | { ok: false; errors: FieldError[] };

export interface BuildContext {
  /** The workspace of the key that sent the record: the only one it may write. */
  workspaceId: string;
  engine: PricingEngine;
  /**
   * A price already computed for exactly this call (the gateway quotes it for the reply header):
   * used as is, so the stored cost is the one the client was told even if the price book changed since.
   */
  price?: PriceResult;
}

const MAX_USAGE_RAW_CHARS = 64 * 1024;
const MAX_CALL_MS = 7 * 86_400_000;
/** Costs are stored as int64 (BIGINT): past it the store would wrap a cost to a negative one. */
const MAX_INT64 = 2n ** 63n - 1n;

export function issuesToFieldErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
  return issues.flatMap((i) =>
    i.code === "unrecognized_keys"
      ? i.keys.map((k) => ({ field: [...i.path, k].join("."), reason: "unknown field" }))
      : [{ field: i.path.join(".") || "(record)", reason: i.message }],
  );
}

/**
 * Validates one client record and turns it into a stored call record: normalizes `usage_raw` when no
 * token counts were given, prices it unless a cost was reported, derives latency. Never throws on
 * bad input: every problem comes back as a field error.
 */
export function buildCallRecord(input: unknown, ctx: BuildContext): BuildResult {
  let r: CheckedCallRecordInput;
  if (passesFastCheck(input)) r = input;
  else {
    const parsed = CallRecordInputSchema.safeParse(input);
    if (!parsed.success) return { ok: false, errors: issuesToFieldErrors(parsed.error.issues) };
    r = parsed.data;
  }
  const kind = r.kind ?? INPUT_DEFAULTS.kind;
  const errors: FieldError[] = [];

  if (r.workspace_id && r.workspace_id !== ctx.workspaceId) {
    errors.push({
      field: "workspace_id",
      reason: `your key belongs to workspace ${JSON.stringify(ctx.workspaceId)}`,
    });
  }
  const inference = isInferenceKind(kind);
  // Tool, agent and other records are trace structure: they may name no provider or model.
  const model = r.model ?? r.model_requested ?? (inference ? null : "");
  const provider = r.provider ?? (inference ? null : "");
  if (provider === null) errors.push({ field: "provider", reason: `required for kind ${kind}` });
  if (model === null) errors.push({ field: "model", reason: "required (or model_requested)" });
  if (r.ts_end != null && r.ts_end < r.ts_start)
    errors.push({ field: "ts_end", reason: "must not be before ts_start" });
  // A call is not made within itself: a record naming itself would count as spend, never as a call of its run.
  if (r.parent_event_id != null && r.parent_event_id.toLowerCase() === r.event_id.toLowerCase())
    errors.push({ field: "parent_event_id", reason: "must name another call than this one (its event_id)" });
  if (r.ts_end != null && r.ts_end - r.ts_start > MAX_CALL_MS)
    errors.push({ field: "ts_end", reason: "must be within 7 days of ts_start (one call, not a session)" });

  const usage = resolveUsage(r, inference, errors);
  if (usage.reasoning_tokens > usage.output_tokens)
    errors.push({
      field: "reasoning_tokens",
      reason: "must not exceed output_tokens (reasoning is a subset of output)",
    });
  // Audio and image output are parts of output, as reasoning is: each alone, and with the parts before it.
  let parts = usage.reasoning_tokens;
  const named = ["reasoning_tokens"];
  for (const field of ["output_audio_tokens", "output_image_tokens"] as const) {
    named.push(field);
    if (usage[field] > usage.output_tokens) errors.push({ field, reason: "must not exceed output_tokens" });
    else if (parts <= usage.output_tokens && parts + usage[field] > usage.output_tokens)
      errors.push({
        field,
        reason: `${named.join(" + ")} must not exceed output_tokens (${named.length === 2 ? "both" : "all"} are parts of output)`,
      });
    parts += usage[field];
  }
  if (usage.web_search_preview_requests > usage.web_search_requests)
    errors.push({
      field: "web_search_preview_requests",
      reason: "must not exceed web_search_requests (preview searches are some of the web searches)",
    });
  if (errors.length || model === null || provider === null) return { ok: false, errors };

  const record: CallRecord = {
    schema_version: SCHEMA_VERSION,
    event_id: r.event_id.toLowerCase(),
    workspace_id: ctx.workspaceId,
    trace_id: r.trace_id ?? null,
    span_id: r.span_id ?? null,
    parent_span_id: r.parent_span_id ?? null,
    parent_event_id: r.parent_event_id?.toLowerCase() ?? null,
    ts_start: r.ts_start,
    ts_end: r.ts_end ?? null,
    latency_ms: r.latency_ms ?? (r.ts_end != null ? r.ts_end - r.ts_start : null),
    ttft_ms: r.ttft_ms ?? null,
    kind,
    provider,
    api: r.api ?? null,
    model_requested: r.model_requested ?? null,
    model,
    stream: r.stream ?? INPUT_DEFAULTS.stream,
    service_tier: r.service_tier ?? null,
    batch: r.batch ?? INPUT_DEFAULTS.batch,
    status: r.status ?? INPUT_DEFAULTS.status,
    http_status: r.http_status ?? null,
    error_type: r.error_type ?? null,
    attempt: r.attempt ?? INPUT_DEFAULTS.attempt,
    request_id: r.request_id ?? null,
    input_uncached_tokens: usage.input_uncached_tokens,
    cache_read_tokens: usage.cache_read_tokens,
    cache_write_5m_tokens: usage.cache_write_5m_tokens,
    cache_write_1h_tokens: usage.cache_write_1h_tokens,
    output_tokens: usage.output_tokens,
    reasoning_tokens: usage.reasoning_tokens,
    input_audio_tokens: usage.input_audio_tokens,
    output_audio_tokens: usage.output_audio_tokens,
    image_tokens: usage.image_tokens,
    cache_audio_read_tokens: usage.cache_audio_read_tokens,
    cache_image_read_tokens: usage.cache_image_read_tokens,
    output_image_tokens: usage.output_image_tokens,
    input_audio_ms: usage.input_audio_ms,
    input_characters: usage.input_characters,
    web_search_requests: usage.web_search_requests,
    file_search_requests: usage.file_search_requests,
    web_search_preview_requests: usage.web_search_preview_requests,
    usage_raw: r.usage_raw ?? null,
    cost_input_uncached_nanousd: 0n,
    cost_cache_read_nanousd: 0n,
    cost_cache_write_5m_nanousd: 0n,
    cost_cache_write_1h_nanousd: 0n,
    cost_output_nanousd: 0n,
    cost_input_audio_nanousd: 0n,
    cost_output_audio_nanousd: 0n,
    cost_image_nanousd: 0n,
    cost_requests_nanousd: 0n,
    cost_tool_calls_nanousd: 0n,
    cost_nanousd: 0n,
    cost_source: "computed",
    price_ref: "",
    priced: false,
    user_id: r.user_id ?? null,
    customer_id: r.customer_id ?? null,
    feature: r.feature ?? null,
    deployment: r.deployment ?? null,
    prompt_version: r.prompt_version ?? null,
    agent_run_id: r.agent_run_id ?? null,
    agent_type: r.agent_type ?? null,
    session_id: r.session_id ?? null,
    route: r.route ?? null,
    variant: r.variant ?? null,
    tags: r.tags ?? [],
    metadata: r.metadata ?? {},
    data_mode: r.data_mode ?? INPUT_DEFAULTS.data_mode,
    key_id: r.key_id ?? null,
  };
  const costError = applyCost(record, r, ctx);
  return costError ? { ok: false, errors: [costError] } : { ok: true, record };
}

/**
 * Usage as given, or normalized from `usage_raw` when no token count is given (model calls only: elsewhere
 * usage_raw is kept as information). Tool-call counts and durations given beside usage_raw win over what it
 * says: an OpenAI Responses usage object has no searches (they are output items), so clients send them apart.
 */
function resolveUsage(r: CheckedCallRecordInput, inference: boolean, errors: FieldError[]): NormalizedUsage {
  let usage = emptyUsage();
  const given = USAGE_FIELDS.filter((f) => r[f] !== undefined);
  if (r.usage_raw !== undefined && r.usage_raw !== null) {
    const size = jsonSize(r.usage_raw);
    if (size === null || size > MAX_USAGE_RAW_CHARS) {
      errors.push({
        field: "usage_raw",
        reason:
          size === null
            ? "is nested too deeply"
            : `must be at most ${MAX_USAGE_RAW_CHARS} characters of JSON`,
      });
      return usage;
    }
    // A measure (audio length, characters) given without token counts is beside usage_raw, as tool-call
    // counts are: the raw object's tokens still count (a client that knows its audio's length must not zero
    // them). Where the raw object does not normalize, the measure given is the usage, and the raw object
    // information.
    const measureGiven = MEASURE_FIELDS.some((f) => r[f] !== undefined);
    if (inference && !TOKEN_FIELDS.some((f) => r[f] !== undefined)) {
      const apiKnown = !!r.api && (APIS as readonly string[]).includes(r.api);
      if (!apiKnown && !measureGiven) {
        errors.push({ field: "api", reason: `needed to normalize usage_raw: one of ${APIS.join(", ")}` });
        return usage;
      }
      if (apiKnown) {
        try {
          usage = normalizeUsage(r.api as Api, r.usage_raw);
          for (const f of [...TOOL_CALL_FIELDS, ...MEASURE_FIELDS]) if (r[f] !== undefined) usage[f] = r[f];
          return usage;
        } catch (e) {
          if (!(e instanceof UsageError)) throw e;
          if (!measureGiven) {
            errors.push({ field: e.field ? `usage_raw.${e.field}` : "usage_raw", reason: e.message });
            return usage;
          }
          usage = emptyUsage();
        }
      }
    }
    if (inference && !TOOL_CALL_FIELDS.some((f) => r[f] !== undefined)) searchesFromRaw(r, usage);
  }
  for (const f of given) usage[f] = r[f] ?? 0;
  return usage;
}

/**
 * Token counts given beside a raw usage object that reports searches (Anthropic's `server_tool_use`,
 * Perplexity's `num_search_queries`), but no search counts: a client from before they were counted. The
 * raw object is information there, so one that does not normalize adds nothing rather than refusing the record.
 */
function searchesFromRaw(r: CheckedCallRecordInput, usage: NormalizedUsage): void {
  const raw = r.usage_raw as Record<string, unknown>;
  if (typeof raw !== "object" || (raw.server_tool_use == null && raw.num_search_queries == null)) return;
  if (!r.api || !(APIS as readonly string[]).includes(r.api)) return;
  try {
    const fromRaw = normalizeUsage(r.api as Api, raw);
    for (const f of TOOL_CALL_FIELDS) usage[f] = fromRaw[f];
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
  }
}

/**
 * Reported costs are kept as sent (categories must add up); otherwise the engine prices model calls.
 * Never priced, cost 0 and priced=false with a price_ref that says why (so neither is a coverage gap):
 * tool/agent/other records, and successful model calls that reported no usage at all (their cost is
 * unknown; a made-up zero must not pass for a real one). A failed call without usage was not billed and
 * is priced as usual (zero usage).
 */
function applyCost(record: CallRecord, r: CheckedCallRecordInput, ctx: BuildContext): FieldError | null {
  const categories = COST_FIELDS.filter((f) => r[f] !== undefined);
  if (r.cost_nanousd !== undefined) {
    const total = BigInt(r.cost_nanousd);
    let sum = 0n;
    for (const f of categories) {
      record[f] = BigInt(r[f] ?? 0);
      sum += record[f];
    }
    if (categories.length && sum !== total)
      return { field: "cost_nanousd", reason: `per-category costs add up to ${sum}, not ${total}` };
    record.cost_nanousd = total;
    record.cost_source = r.cost_source ?? "reported";
    record.price_ref = r.price_ref ?? "reported";
    record.priced = r.priced ?? true;
    return null;
  }
  if (categories.length)
    return { field: "cost_nanousd", reason: "required when per-category costs are given" };
  // Tollgate prices this call itself: a price_ref or priced sent would be dropped for its own, and a cost
  // "reported" with none reported would be untrue.
  for (const f of ["price_ref", "priced"] as const)
    if (r[f] != null) return { field: f, reason: "is kept only beside a reported cost_nanousd" };
  if (r.cost_source === "reported")
    return { field: "cost_source", reason: "reported needs the cost reported, in cost_nanousd" };
  if (!isInferenceKind(record.kind) || (!ctx.price && record.status === "ok" && !reportsUsage(r))) {
    record.cost_source = r.cost_source ?? "computed";
    record.price_ref = isInferenceKind(record.kind) ? PRICE_REF_NO_USAGE : PRICE_REF_NOT_A_MODEL_CALL;
    return null;
  }
  const res =
    ctx.price ??
    ctx.engine.price({
      provider: record.provider,
      model: record.model,
      usage: record,
      at: record.ts_start,
      batch: record.batch,
      serviceTier: record.service_tier,
      servedAs: servedAsOf(record.usage_raw),
    });
  // Every count is within its bounds, but their cost may not be (1e12 web searches at $10 a thousand is
  // 1e19 nano-USD); the categories add up to the total, so the total bounds them all.
  if (res.cost.total_nanousd > MAX_INT64)
    return {
      field: "cost_nanousd",
      reason: `the cost of this usage (${res.cost.total_nanousd} nano-USD at ${res.price_ref}) is past int64, the most a cost can be stored as: check the usage counts`,
    };
  record.cost_nanousd = res.cost.total_nanousd;
  // Field by field: a computed key per category is a slow store on every priced record.
  const by = res.cost.by_category;
  record.cost_input_uncached_nanousd = by.input_uncached;
  record.cost_cache_read_nanousd = by.cache_read;
  record.cost_cache_write_5m_nanousd = by.cache_write_5m;
  record.cost_cache_write_1h_nanousd = by.cache_write_1h;
  record.cost_output_nanousd = by.output;
  record.cost_input_audio_nanousd = by.input_audio;
  record.cost_output_audio_nanousd = by.output_audio;
  record.cost_image_nanousd = by.image;
  record.cost_requests_nanousd = by.requests;
  record.cost_tool_calls_nanousd = by.tool_calls;
  record.cost_source = r.cost_source ?? "computed";
  record.price_ref = res.price_ref;
  record.priced = res.priced;
  return null;
}

function reportsUsage(r: CheckedCallRecordInput): boolean {
  return (r.usage_raw !== undefined && r.usage_raw !== null) || USAGE_FIELDS.some((f) => r[f] !== undefined);
}

/** Length of the value's JSON, or null when it is nested too deeply to serialize (stack overflow). */
function jsonSize(value: unknown): number | null {
  try {
    return JSON.stringify(value).length;
  } catch (e) {
    if (e instanceof RangeError) return null;
    throw e;
  }
}
