/**
 * "@tollgate/core/fields": the call record's shape and the helpers a store needs to keep it, without the
 * input schema (zod) or the built-in price data. A store thread imports this alone, which keeps ~7 MB of
 * modules out of its heap.
 */

export { uuidv7Time } from "./ids.js";
export { totalInputTokens } from "./pricing/cost.js";
export * from "./record/call-record.js";
export {
  CACHED_MEDIA_FIELDS,
  FIRST_LAYOUT_TOKEN_FIELDS,
  FIRST_LAYOUT_TOOL_CALL_FIELDS,
  MEASURE_FIELDS,
  type NormalizedUsage,
  TOKEN_FIELDS,
  TOOL_CALL_FIELDS,
  USAGE_FIELDS,
} from "./usage/types.js";
