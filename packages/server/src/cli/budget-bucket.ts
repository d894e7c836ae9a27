/**
 * What a budget bucket counts, as `budgets status` and `forecast` name it: the budget's scope, each per-value
 * field (customer_id=*) as the bucket's value, calls without one as (none). A bucket names only its
 * per-value fields: feature=summarize alone would read as no scope at all ("-", the whole workspace).
 */
export function bucketLabel(scope: Record<string, string>, bucket: Record<string, string>): string {
  const fields = Object.entries({ ...scope, ...bucket });
  return fields.map(([f, v]) => `${f}=${v || "(none)"}`).join(" ") || "-";
}
