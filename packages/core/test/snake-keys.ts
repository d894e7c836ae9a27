/**
 * Every object key of `value`, at any depth, in snake_case (`promptTokenCount` → `prompt_token_count`),
 * values kept: a Google API's JSON as its proto names spell it (Python's `model_dump()` writes so).
 */
export function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), snakeKeys(v)]),
  );
}
