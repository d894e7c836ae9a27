import { badRequest } from "../errors.js";
import { parseTime, QueryTimeError } from "../query-time.js";
import { FILTER_FIELDS } from "../store/types.js";

/** What every filtered read takes: the workspace, the window and the exact-match filters. */
export const FILTER_PARAMS = ["workspace", "from", "to", ...FILTER_FIELDS] as const;

/**
 * A 400 naming the first query parameter a route does not take, or one given more than once: a misspelt
 * filter (`customer=` for `customer_id=`) would otherwise be dropped, and the answer would cover every
 * customer; a repeated one (`customer_id=a&customer_id=b`) would be read as its first value alone.
 */
export function onlyParams(queries: Record<string, string[]>, known: readonly string[]): void {
  for (const [name, values] of Object.entries(queries)) {
    if (!known.includes(name))
      throw badRequest(
        "invalid_parameter",
        `unknown parameter ${name}; ${known.length ? `this route takes ${known.join(", ")}` : "this route takes none"}`,
        name,
      );
    if (values.length > 1)
      throw badRequest("invalid_parameter", `${name} is given ${values.length} times; give it once`, name);
  }
}

/** One of `allowed` from the query string, undefined when absent; a 400 naming it otherwise. */
export function oneOfParam<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  name: string,
): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value))
    throw badRequest("invalid_parameter", `${name} must be one of ${allowed.join(", ")}`, name);
  return value as T;
}

/** A time from the query string (parseTime's forms), undefined when absent; a 400 naming it when unusable. */
export function timeParam(value: string | undefined, name: string, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseTime(value, now);
  } catch (e) {
    if (e instanceof QueryTimeError) throw badRequest("invalid_parameter", `${name} ${e.message}`, name);
    throw e;
  }
}

/**
 * A whole number from the query string in min..max, undefined when absent; a 400 naming it otherwise.
 * Digits only: Number() would also take "1e3", "0x10" and " 5 ".
 */
export function intParam(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\d{1,15}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max))
    throw badRequest("invalid_parameter", `${name} must be a whole number from ${min} to ${max}`, name);
  return n;
}
