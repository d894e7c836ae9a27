import { type FieldError, issuesToFieldErrors } from "./build.js";
import { ATTRIBUTION_FIELDS } from "./call-record.js";
import { fieldsPassFastCheck } from "./fast-check.js";
import { CallRecordInputSchema } from "./schema.js";

/** A call's attribution as a record takes it: its ids, tags and metadata. */
const AttributionSchema = CallRecordInputSchema.pick({
  ...(Object.fromEntries(ATTRIBUTION_FIELDS.map((f) => [f, true])) as Record<
    (typeof ATTRIBUTION_FIELDS)[number],
    true
  >),
  tags: true,
  metadata: true,
});

/**
 * Why the record schema would refuse this attribution (a field too long, too many tags, …), field by
 * field; none when it would take it. A gateway checks it before the call goes upstream, so a bad header
 * is the client's error, not attribution silently lost after the call was billed.
 */
export function attributionErrors(attribution: Record<string, unknown>): FieldError[] {
  if (fieldsPassFastCheck(attribution)) return [];
  const parsed = AttributionSchema.safeParse(attribution);
  return parsed.success ? [] : issuesToFieldErrors(parsed.error.issues);
}
