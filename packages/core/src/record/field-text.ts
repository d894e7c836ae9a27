import { INPUT_LIMITS } from "./schema.js";

/**
 * A string from a request or reply as a record field: at most `max` UTF-16 units and valid Unicode (a
 * lone surrogate, or half a pair the cut left, becomes U+FFFD), else null. The record must accept it: a
 * reply already priced and answered is never left unrecorded over a field it only describes.
 */
export function fieldText(v: unknown, max: number = INPUT_LIMITS.text): string | null {
  if (typeof v !== "string" || v.length === 0) return null;
  const cut = v.length > max ? v.slice(0, max) : v;
  return cut.isWellFormed() ? cut : cut.toWellFormed();
}
