import { ATTRIBUTION_FIELDS } from "../record/call-record.js";

/**
 * What a limit can be scoped to: any attribution field, the model and provider, the gateway key, or a tag.
 * A value "*" means "each distinct value separately" (e.g. `{user_id: "*"}`: every user has their own cap);
 * a call without that field counts under the empty value, so leaving it out never escapes a cap.
 */
export const SCOPE_FIELDS = [...ATTRIBUTION_FIELDS, "model", "provider", "key_id", "tag"] as const;
export type ScopeField = (typeof SCOPE_FIELDS)[number];
export type Scope = Partial<Record<ScopeField, string>>;

export const EACH = "*";

/** The facts about one call that scopes are matched against. */
export interface CallFacts extends Partial<Record<Exclude<ScopeField, "tag">, string | null>> {
  tags?: readonly string[] | null;
}

/** Does the call fall under the scope? (Fixed values must match exactly; "*" matches anything.) */
export function scopeMatches(scope: Scope, call: CallFacts): boolean {
  for (const [field, want] of Object.entries(scope) as [ScopeField, string][]) {
    if (want === EACH) continue;
    if (field === "tag") {
      if (!call.tags?.includes(want)) return false;
    } else if ((call[field] ?? "") !== want) return false;
  }
  return true;
}

/** The "*" fields of a scope, in a fixed order: they split one limit into one bucket per value. */
export function eachFields(scope: Scope): Exclude<ScopeField, "tag">[] {
  let fields = eachCache.get(scope);
  if (!fields) {
    fields = SCOPE_FIELDS.filter((f) => scope[f] === EACH && f !== "tag") as Exclude<ScopeField, "tag">[];
    eachCache.set(scope, fields);
  }
  return fields;
}

/** Scopes are compiled once and read on every call: their "*" fields are worked out once. */
const eachCache = new WeakMap<Scope, Exclude<ScopeField, "tag">[]>();

/** The bucket of a call under a scope: the call's values of the scope's "*" fields, escaped and joined. */
export function bucketValues(scope: Scope, call: CallFacts): string[] {
  return eachFields(scope).map((f) => call[f] ?? "");
}

export function bucketId(values: readonly string[]): string {
  if (values.length === 0) return "-";
  if (values.length === 1) return encodeURIComponent(values[0]!);
  return values.map((v) => encodeURIComponent(v)).join("|");
}
