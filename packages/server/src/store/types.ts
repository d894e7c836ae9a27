import { ATTRIBUTION_FIELDS, type CallRecord } from "@tollgate/core";

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

/** Fields an EventFilter may match exactly: attribution plus provider, model and data mode. */
export const FILTER_FIELDS = [...ATTRIBUTION_FIELDS, "provider", "model", "data_mode"] as const;
export type FilterField = (typeof FILTER_FIELDS)[number];

export interface EventFilter {
  workspaceId: string;
  /** Epoch ms, inclusive. */
  from?: number;
  /** Epoch ms, exclusive. */
  to?: number;
  /** Exact-match filters on attribution fields and provider/model. */
  where?: Partial<Record<FilterField, string>>;
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
  query(filter: EventFilter & { limit?: number }): Promise<CallRecord[]>;
  spend(filter: EventFilter, by: SpendDimension): Promise<SpendRow[]>;
  unpriced(filter: EventFilter): Promise<UnpricedRow[]>;
  count(filter: EventFilter): Promise<number>;
}

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

/** A complete store: events, keys, and its lifecycle. */
export interface Store extends EventStore, KeyStore {
  /** How many appends may run at once (the writer keeps their ids disjoint). */
  readonly writeConcurrency: number;
  close(): Promise<void>;
}
