import { badRequest } from "../errors.js";
import { parseTime, QueryTimeError } from "../query-time.js";

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
