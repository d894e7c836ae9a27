import { hash } from "node:crypto";
import { uuidv8FromSha256 } from "@tollgate/core";

/** The event_id named by `name` (uuidv8FromSha256): stored once however often it is recorded. */
export function namedEventId(name: string): string {
  return uuidv8FromSha256(hash("sha256", name, "hex"));
}
