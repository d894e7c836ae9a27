import type { AttributionField } from "@tollgate/core";

/** Who and what a call is for, in the app's own terms; every field lands on the call record. */
export interface Attribution {
  userId?: string;
  /** The tenant paying for the call. */
  customerId?: string;
  feature?: string;
  /** prod | staging | … */
  deployment?: string;
  promptVersion?: string;
  agentRunId?: string;
  agentType?: string;
  sessionId?: string;
  route?: string;
  variant?: string;
  /** Added to the tags of enclosing scopes. */
  tags?: readonly string[];
  /** Merged over the metadata of enclosing scopes. */
  metadata?: Readonly<Record<string, string>>;
}

/** The record's attribution fields, resolved once per scope (calls only copy them). */
export interface RecordAttribution extends Partial<Record<AttributionField, string>> {
  tags: readonly string[];
  metadata: Readonly<Record<string, string>>;
}

const FIELD_OF: Record<Exclude<keyof Attribution, "tags" | "metadata">, AttributionField> = {
  userId: "user_id",
  customerId: "customer_id",
  feature: "feature",
  deployment: "deployment",
  promptVersion: "prompt_version",
  agentRunId: "agent_run_id",
  agentType: "agent_type",
  sessionId: "session_id",
  route: "route",
  variant: "variant",
};

export const EMPTY_ATTRIBUTION: RecordAttribution = Object.freeze({ tags: [], metadata: {} });

/** An inner scope's attribution over an outer one: fields win, tags add up, metadata merges. */
export function mergeAttribution(outer: RecordAttribution, inner: Attribution): RecordAttribution {
  const merged: RecordAttribution = { ...outer };
  for (const [key, field] of Object.entries(FIELD_OF) as [keyof typeof FIELD_OF, AttributionField][]) {
    const value = inner[key];
    if (value !== undefined) merged[field] = value;
  }
  if (inner.tags?.length) merged.tags = [...new Set([...outer.tags, ...inner.tags])];
  if (inner.metadata) merged.metadata = { ...outer.metadata, ...inner.metadata };
  return merged;
}
