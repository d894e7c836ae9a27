import { UsageError } from "./errors.js";
import type { JsonObject } from "./read.js";

// Made once per field: the normalizer runs per call, and a replace() with a callback each time, then a
// lookup by that new string, made it about 20 times slower.
const protoNames = new Map<string, string>();

/** A field's proto name from its lowerCamelCase JSON name: `maxOutputTokens` → `max_output_tokens`. */
export function protoName(jsonName: string): string {
  let name = protoNames.get(jsonName);
  if (name === undefined) {
    name = jsonName.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    protoNames.set(jsonName, name);
  }
  return name;
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
  if (proto === jsonName || obj[proto] === undefined || obj[proto] === null) return jsonName;
  if (obj[jsonName] !== undefined && obj[jsonName] !== null)
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
  // No proto name among its keys (as the REST API sends it): each field is under its JSON name.
  if (!hasProtoName(obj)) return sameNames(jsonNames);
  const keys = {} as Record<N, string>;
  for (const name of jsonNames) keys[name] = protoKey(obj, name, at, fail);
  return keys;
}

/** Whether a key of `obj` is snake_case: JSON names are lowerCamelCase, with no underscore. */
function hasProtoName(obj: JsonObject): boolean {
  for (const key in obj) if (key.includes("_")) return true;
  return false;
}

const identities = new WeakMap<readonly string[], Record<string, string>>();

/** Each name mapped to itself, made once per list. */
function sameNames<N extends string>(names: readonly N[]): Record<N, string> {
  let same = identities.get(names);
  if (!same) {
    same = Object.fromEntries(names.map((n) => [n, n]));
    identities.set(names, same);
  }
  return same as Record<N, string>;
}
