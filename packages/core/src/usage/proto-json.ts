import { UsageError } from "./errors.js";
import type { JsonObject } from "./read.js";

/** A field's proto name from its lowerCamelCase JSON name: `maxOutputTokens` → `max_output_tokens`. */
export function protoName(jsonName: string): string {
  return jsonName.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Makes the error for a field that cannot be read: its path, and why. */
export type FieldFailure = (field: string, message: string) => Error;

const usageFailure: FieldFailure = (field, message) => new UsageError(field, message);

/**
 * The key a Google API's JSON (Gemini, Vertex AI) sends a field under. Google parses JSON by proto3 rules,
 * which take a field by its lowerCamelCase JSON name or by its proto name (snake_case, as Python's
 * `model_dump()` and `MessageToDict(preserving_proto_field_name=True)` write it): the key sent, else the
 * JSON name. A null is no value (proto3 JSON reads it as the field's default). Under both names the field
 * is set twice, which protobuf's parser refuses ("'max_output_tokens' has already been set") rather than
 * pick one: so does this, by `fail`. `at` is the path of `obj` in the errors (ending in its dot).
 */
export function protoKey(obj: JsonObject, jsonName: string, at = "", fail = usageFailure): string {
  const proto = protoName(jsonName);
  const sent = (key: string) => obj[key] !== undefined && obj[key] !== null;
  if (proto === jsonName || !sent(proto)) return jsonName;
  if (sent(jsonName))
    throw fail(
      `${at}${jsonName}`,
      `sent both as ${jsonName} and as ${proto}, the same field twice (Google refuses such a body): send one`,
    );
  return proto;
}

/** protoKey of each field named: the key each is sent under. */
export function protoKeys<N extends string>(
  obj: JsonObject,
  jsonNames: readonly N[],
  at = "",
  fail = usageFailure,
): Record<N, string> {
  const keys = {} as Record<N, string>;
  for (const name of jsonNames) keys[name] = protoKey(obj, name, at, fail);
  return keys;
}
