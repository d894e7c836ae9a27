import { COST_CATEGORIES, type CostCategory } from "../pricing/cost.js";
import type { NormalizedUsage } from "../usage/types.js";

// The stored call record's shape and vocabularies. No zod and no price data here: store threads import
// this (through "@tollgate/core/fields") and only move records.

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
/**
 * error_type of a gateway's attempt whose upstream refused the `stream_options` the gateway added to ask a
 * stream for its usage: the gateway's own re-send of the call follows, the same try of its client's, which
 * a run rebuilt from the store does not count as a retry.
 */
export const STREAM_OPTIONS_REFUSED = "stream_options_refused";
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
/** The cost of server-side tool calls: added to stores and exports after their first layout, so laid out last. */
export const TOOL_CALLS_COST_FIELD = "cost_tool_calls_nanousd" satisfies CostField;
/** The cost fields of the first stored layout, in its order. */
export const FIRST_LAYOUT_COST_FIELDS = COST_FIELDS.filter((f) => f !== TOOL_CALLS_COST_FIELD);

/** One billed LLM call or span, as stored: usage normalized and disjoint, money in integer nano-USD. */
export interface CallRecord extends NormalizedUsage, Record<CostField, bigint> {
  schema_version: number;
  event_id: string;
  workspace_id: string;
  trace_id: string | null;
  span_id: string | null;
  parent_span_id: string | null;
  /**
   * The call this one was made within, where a hosted tool of that call ran a model of its own (the
   * Responses image generation tool's image): spend of that call's, not another LLM call of its agent run.
   */
  parent_event_id: string | null;
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
