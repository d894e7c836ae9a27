import { ATTRIBUTION_FIELDS, type CallRecord } from "@tollgate/core/fields";

/** Dimensions spend can be grouped by. */
export const SPEND_DIMENSIONS = [
  "feature",
  "customer_id",
  "user_id",
  "model",
  "prompt_version",
  "provider",
  "agent_type",
  "deployment",
  "day",
] as const;
export type SpendDimension = (typeof SPEND_DIMENSIONS)[number];

/** Fields an EventFilter may match exactly: attribution, provider, model, data mode, key and call ids. */
export const FILTER_FIELDS = [
  ...ATTRIBUTION_FIELDS,
  "provider",
  "model",
  "data_mode",
  "key_id",
  // One call (x-tollgate-event-id of a gateway reply), or every attempt of a retried one.
  "event_id",
  "request_id",
] as const;
export type FilterField = (typeof FILTER_FIELDS)[number];
const FILTERABLE: ReadonlySet<string> = new Set(FILTER_FIELDS);
export const isFilterField = (name: string): name is FilterField => FILTERABLE.has(name);

export interface EventFilter {
  workspaceId: string;
  /** Records of this deployment or of none (`deployment=prod`, asked for or the analytics default: unlabeled traffic is not lost). */
  deploymentOrUnset?: string;
  /** Epoch ms, inclusive. */
  from?: number;
  /** Epoch ms, exclusive. */
  to?: number;
  /** Exact-match filters on FILTER_FIELDS. */
  where?: Partial<Record<FilterField, string>>;
}

/** The attribution a daily summary row is keyed by, after workspace and day ('' stands for none). */
export const SUMMARY_KEYS = [
  "deployment",
  "data_mode",
  "feature",
  "customer_id",
  "user_id",
  "model",
  "prompt_version",
  "provider",
  "agent_type",
  "kind",
] as const;

const SUMMARY_FILTERABLE: ReadonlySet<string> = new Set(SUMMARY_KEYS);

/** Whether a filter can be answered from the summary (it only filters by summary keys). */
export function summaryCanAnswer(filter: EventFilter): boolean {
  return Object.entries(filter.where ?? {}).every(([k, v]) => v === undefined || SUMMARY_FILTERABLE.has(k));
}

export interface Retention {
  /** Raw events exist from here on (epoch ms of a UTC midnight); null: never purged. */
  raw_available_from: number | null;
  /** Summary days exist from here on; null: never purged. */
  summary_available_from: number | null;
}

/** Where a page of records ends: its last record's start time (epoch ms) and event id. */
export interface QueryCursor {
  ts: number;
  id: string;
}

/** A page of records (`query`'s filter, limit and order) as one JSON array of field values per record. */
export interface JsonRows {
  /** The records' arrays, comma-separated: the items of a JSON array, to be spliced into an answer as they are. */
  json: string;
  rows: number;
  /** The page's last record, where a next page starts (null: the page is empty). */
  last: QueryCursor | null;
}

export interface SpendRow {
  key: string | null;
  calls: number;
  cost_nanousd: bigint;
  input_tokens: number;
  output_tokens: number;
  unpriced_calls: number;
}

export interface UnpricedRow {
  provider: string;
  model: string;
  calls: number;
  first_seen: number;
  last_seen: number;
}

export interface AppendResult {
  /** `recordKey`s of the records newly stored; the others of the batch were already there (duplicates). */
  inserted: Set<string>;
}

/** Idempotency is per workspace: the same event_id in two workspaces is two events. */
export function recordKey(workspaceId: string, eventId: string): string {
  return `${workspaceId}\u0000${eventId}`;
}

/**
 * Where call records live. Appends are idempotent by (workspace_id, event_id) and atomic per call: when `append`
 * resolves, the whole batch is durable; when it rejects, none of it was stored.
 */
export interface EventStore {
  append(records: readonly CallRecord[]): Promise<AppendResult>;
  /** Records in (ts_start, event_id) order; `after` continues from the last one of a previous page. */
  query(filter: EventFilter & { limit?: number; after?: QueryCursor }): Promise<CallRecord[]>;
  /**
   * `query`'s page as JSON text, each record the array of its `fields`' values as the records' JSON has them
   * (`recordsJson`): what an export sends, written without building a record object per row.
   */
  queryJson(
    filter: EventFilter & { limit?: number; after?: QueryCursor },
    fields: readonly (keyof CallRecord)[],
  ): Promise<JsonRows>;
  spend(filter: EventFilter, by: SpendDimension): Promise<SpendRow[]>;
  /** How far back raw events and daily summaries go (null: never purged). */
  retention(workspaceId: string): Promise<Retention>;
  /** Deletes raw events before `rawBefore` and summary days before `summaryBefore` (UTC midnights, ms). */
  purge(
    rawBefore: number | null,
    summaryBefore: number | null,
  ): Promise<{ raw_deleted: number; summary_deleted: number }>;
  unpriced(filter: EventFilter): Promise<UnpricedRow[]>;
  count(filter: EventFilter): Promise<number>;
  /** One call by its id (ids are stored lowercase), or null when no such call is stored. */
  findEvent(workspaceId: string, eventId: string): Promise<CallRecord | null>;
  /** Which of these calls (ids as stored, lowercase) the store holds. */
  storedIds(workspaceId: string, eventIds: readonly string[]): Promise<Set<string>>;
  /**
   * The records of these traces (ids as stored, lowercase) that started in [from, to) (epoch ms), in no
   * order: how OTLP ingest finds a span's relatives stored by earlier exports.
   */
  traceSpans(
    workspaceId: string,
    traceIds: readonly string[],
    from: number,
    to: number,
  ): Promise<TraceSpan[]>;
  /**
   * Every workspace made (`default`, one a key was created for) or holding calls (raw or summarized: a
   * root import's too), by id in code point order.
   */
  workspaces(): Promise<WorkspaceRow[]>;
  /**
   * One workspace as `workspaces` lists it, or null when nothing made it and it holds no calls: read by its
   * id alone, so checking one costs no list of thousands.
   */
  workspace(id: string): Promise<WorkspaceRow | null>;
}

/** A workspace the store knows, and whether it holds any calls. */
export interface WorkspaceRow {
  id: string;
  calls: boolean;
}

/** A record's place in its trace, and what it reports (see EventStore.traceSpans). */
export type TraceSpan = Pick<
  CallRecord,
  "event_id" | "trace_id" | "span_id" | "parent_span_id" | "kind" | "usage_raw" | "priced"
>;

export const ROLES = ["ingest", "read", "admin", "gateway"] as const;
export type Role = (typeof ROLES)[number];

/** Attribution a key stamps on the calls it makes through the gateway (headers still win). */
export const KEY_DEFAULT_FIELDS = [
  "customer_id",
  "user_id",
  "feature",
  "deployment",
  "prompt_version",
  "agent_type",
  "route",
  "variant",
] as const;
export type KeyDefaults = Partial<Record<(typeof KEY_DEFAULT_FIELDS)[number], string>>;

export interface ApiKeyRecord {
  id: string;
  workspace_id: string;
  role: Role;
  label: string | null;
  created_at: number;
  defaults: KeyDefaults;
}

/** Workspaces and API keys (only hashes are stored). */
export interface KeyStore {
  ensureWorkspace(id: string): Promise<void>;
  insertKey(key: ApiKeyRecord & { hash: string }): Promise<void>;
  findKeyByHash(hash: string): Promise<ApiKeyRecord | null>;
  /** Keys of a workspace (all workspaces when omitted), revoked ones included, never their hashes. */
  listKeys(workspaceId?: string): Promise<(ApiKeyRecord & { revoked_at: number | null })[]>;
  /** Revokes a live key of the workspace; false when there is none with that id. */
  revokeKey(workspaceId: string, id: string): Promise<boolean>;
}

export const POLICY_KINDS = ["budget", "rate_limit", "agent"] as const;
export type PolicyKind = (typeof POLICY_KINDS)[number];

/** A budget, rate limit or agent-type ceiling set through the API (spec: as validated, JSON). */
export interface PolicyRow {
  workspace_id: string;
  kind: PolicyKind;
  id: string;
  spec: unknown;
  updated_at: number;
  updated_by: string;
}

export interface PolicyAuditRow {
  ts: number;
  workspace_id: string;
  kind: PolicyKind;
  id: string;
  action: "create" | "update" | "delete";
  actor: string;
  before: unknown;
  after: unknown;
}

/** What the limits did: a budget state transition, a run killed or unkilled, a backend outage. */
export const LIMIT_EVENT_TYPES = [
  "budget_state",
  "run_killed",
  "run_unkilled",
  "limits_unavailable",
] as const;

/** Something the limits did (one of LIMIT_EVENT_TYPES). */
export interface LimitEventRow {
  ts: number;
  workspace_id: string;
  type: (typeof LIMIT_EVENT_TYPES)[number];
  /** Budget id, run id or backend name. */
  subject: string;
  bucket: string | null;
  from_state: string | null;
  to_state: string | null;
  spend_nanousd: bigint | null;
  limit_nanousd: bigint | null;
  event_id: string | null;
  request_id: string | null;
  detail: Record<string, unknown> | null;
}

/** Fields spend can be summed by for limit rebuilds: the scope fields that are record columns. */
export const SUM_FIELDS = [...ATTRIBUTION_FIELDS, "model", "provider", "key_id"] as const;
export type SumField = (typeof SUM_FIELDS)[number];

export interface CostSumRow {
  values: (string | null)[];
  /** Hour slot (epoch ms / 3.6e6) when summed hourly. */
  hour: number | null;
  cost_nanousd: bigint;
}

export interface RunUsageRow {
  agent_run_id: string;
  cost_nanousd: bigint;
  total_tokens: number;
  llm_calls: number;
  tool_calls: number;
  retries: number;
  started_at: number;
}

/** Policies, their audit trail, limit events, and the sums limits are rebuilt from. */
export interface LimitsStateStore {
  /** Which of these calls the store holds (see EventStore). */
  storedIds(workspaceId: string, eventIds: readonly string[]): Promise<Set<string>>;
  /** One call as the store holds it, or null (see EventStore). */
  findEvent(workspaceId: string, eventId: string): Promise<CallRecord | null>;
  listPolicies(workspaceId?: string): Promise<PolicyRow[]>;
  /** Creates or replaces a policy and audits the change in one transaction; returns the previous one. */
  putPolicy(row: PolicyRow): Promise<PolicyRow | null>;
  deletePolicy(workspaceId: string, kind: PolicyKind, id: string, actor: string): Promise<PolicyRow | null>;
  policyAudit(workspaceId: string, kind?: PolicyKind, id?: string): Promise<PolicyAuditRow[]>;
  appendLimitEvents(rows: LimitEventRow[]): Promise<void>;
  limitEvents(
    workspaceId: string,
    opts: { from?: number; type?: string; subject?: string; limit?: number },
  ): Promise<LimitEventRow[]>;
  /** Cost summed by `by` (and by hour when `hourly`), for events from `filter.from` on. */
  sumCost(
    filter: EventFilter & { tag?: string },
    by: readonly SumField[],
    hourly: boolean,
  ): Promise<CostSumRow[]>;
  /** Per-run usage from `since` on (of one run when `runId` is given). */
  runUsage(workspaceId: string, since: number, runId?: string): Promise<RunUsageRow[]>;
}

// ---- analytics: the aggregates rollups, variance and forecasts are built from (rollup math is in core) ----

/** Dimensions a segment query may group by. */
export const SEGMENT_DIMENSIONS = [
  "feature",
  "customer_id",
  "user_id",
  "model",
  "provider",
  "prompt_version",
  "agent_type",
  "deployment",
] as const;
export type SegmentDimension = (typeof SEGMENT_DIMENSIONS)[number];

/**
 * What an analytics query counts of `filter`: money is every record's cost (model calls, and any other
 * record that carries one, as `spend` sums it); requests and successes are model calls' (llm, embedding). A
 * request is counted by its first attempt (retries, attempt > 1, share its request_id and are not more
 * requests).
 */
export interface SegmentRow {
  key: string | null;
  requests: number;
  /** Requests with a successful attempt. */
  ok_requests: number;
  cost_nanousd: bigint;
  /** Spend on attempts after the first (attempt > 1). */
  retry_cost_nanousd: bigint;
  /** Spend on attempts that did not succeed. */
  error_cost_nanousd: bigint;
  users: number;
  /** Epoch ms of the segment's first call in the filter's window. */
  first_seen: number;
}

/** One day of per-user spend (percentiles by nearest rank over the users active that day). */
export interface UserDayRow {
  day: string;
  cost_nanousd: bigint;
  users: number;
  requests: number;
  p50_nanousd: bigint;
  p90_nanousd: bigint;
  p99_nanousd: bigint;
  max_nanousd: bigint;
  top: { user_id: string | null; cost_nanousd: bigint }[];
}

/** Agent runs of one agent_type (percentiles by nearest rank over its runs' costs). */
export interface AgentRunRollupRow {
  agent_type: string | null;
  runs: number;
  cost_nanousd: bigint;
  p50_nanousd: bigint;
  p99_nanousd: bigint;
  max_nanousd: bigint;
  max_run_id: string;
  killed_runs: number;
  llm_calls: number;
  tool_calls: number;
}

export interface AnalyticsStore {
  /** Segment sums per dimension of `dims`, in one pass; `users` counts distinct users (costly). */
  segments(
    filter: EventFilter,
    dims: readonly SegmentDimension[],
    users: boolean,
  ): Promise<Record<SegmentDimension, SegmentRow[]>>;
  /** Values of `by` first seen (within `filter`) at or after `since`, with when. */
  firstSeen(
    filter: EventFilter,
    by: SegmentDimension,
    since: number,
  ): Promise<{ key: string; first_seen: number }[]>;
  userDays(filter: EventFilter, top: number): Promise<UserDayRow[]>;
  agentRuns(filter: EventFilter): Promise<AgentRunRollupRow[]>;
}

/** A complete store: events, keys, limits state, analytics, and its lifecycle. */
export interface Store extends EventStore, KeyStore, LimitsStateStore, AnalyticsStore {
  /** How many appends may run at once (the writer keeps their ids disjoint). */
  readonly writeConcurrency: number;
  /** Other processes write to it too (scale-out): what a process caches from it must be re-read. */
  readonly shared: boolean;
  close(): Promise<void>;
}
