import { UsageError } from "./errors.js";

/** A JSON object as it comes off the wire; values are inspected one by one, never trusted. */
export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The usage object itself must be an object: anything else is not a usage report. */
export function requireObject(value: unknown, field: string): JsonObject {
  if (!isObject(value)) {
    throw new UsageError(field, `expected an object, got ${describe(value)}`);
  }
  return value;
}

/** A nested details object: absent or null means "not reported" (all zeros). */
export function optionalObject(parent: JsonObject, key: string, field: string): JsonObject | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw new UsageError(field, `expected an object, got ${describe(value)}`);
  return value;
}

/** A nested array (e.g. Gemini modality details): absent or null means "not reported". */
export function optionalArray(parent: JsonObject, key: string, field: string): unknown[] | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw new UsageError(field, `expected an array, got ${describe(value)}`);
  return value;
}

/**
 * A token count, or undefined when the provider did not report it (absent or null).
 * Counts are billed, so anything but a non-negative safe integer is rejected rather than coerced.
 */
export function optionalCount(obj: JsonObject | undefined, key: string, field: string): number | undefined {
  if (obj === undefined) return undefined;
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  return checkCount(value, field);
}

/** A token count that may be omitted (0 when absent). */
export function count(obj: JsonObject | undefined, key: string, field: string): number {
  return optionalCount(obj, key, field) ?? 0;
}

/** A token count the provider always sends: its absence means this is not the usage shape we expect. */
export function requiredCount(obj: JsonObject, key: string, field: string): number {
  const value = optionalCount(obj, key, field);
  if (value === undefined) throw new UsageError(field, "missing required token count");
  return value;
}

export function checkCount(value: unknown, field: string): number {
  if (typeof value !== "number") {
    throw new UsageError(field, `expected a token count (integer), got ${describe(value)}`);
  }
  if (!Number.isFinite(value)) throw new UsageError(field, `token count is not finite (${value})`);
  if (!Number.isInteger(value)) throw new UsageError(field, `token count is not an integer (${value})`);
  if (value < 0) throw new UsageError(field, `token count is negative (${value})`);
  if (!Number.isSafeInteger(value)) throw new UsageError(field, `token count is too large (${value})`);
  return value;
}

/**
 * Guards a "part of" relation (e.g. cached ⊆ prompt): a violation means our reading of the shape is
 * wrong. `label` describes a part made of several fields (`partField` is then their container).
 */
export function checkSubset(
  part: number,
  partField: string,
  whole: number,
  wholeField: string,
  label: string = partField,
): void {
  if (part > whole) {
    throw new UsageError(partField, `${label} (${part}) exceeds ${wholeField} (${whole})`);
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `a string (${JSON.stringify(value.slice(0, 40))})`;
  if (typeof value === "number") return String(value);
  return typeof value;
}

/** The first tool of a request's `tools` (or of those a response repeats) whose `type` matches, if any. */
export function toolOf(
  body: Record<string, unknown> | null | undefined,
  matches: (type: string) => boolean,
): Record<string, unknown> | null {
  const tools = body?.tools;
  if (!Array.isArray(tools)) return null;
  for (const tool of tools)
    if (isObject(tool) && typeof tool.type === "string" && matches(tool.type)) return tool;
  return null;
}
