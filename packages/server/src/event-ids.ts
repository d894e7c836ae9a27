import { hash } from "node:crypto";
import { uuidv8FromSha256 } from "@tollgate/core";

/** The event_id named by `name` (uuidv8FromSha256): stored once however often it is recorded. */
export function namedEventId(name: string): string {
  return uuidv8FromSha256(hash("sha256", name, "hex"));
}

/**
 * The event_id of a background response's llm record in a workspace: the same whoever records it (a poll,
 * a resumed stream, its own stream read to its end), so it is stored, and counted, once.
 */
export function responseEventId(workspaceId: string, responseId: string): string {
  return namedEventId(`openai-response:${workspaceId}:${responseId}`);
}
