import { createHash } from "node:crypto";
import { uuidv8FromSha256 } from "@tollgate/core";

// W3C trace-context sized ids (32 / 16 hex digits), drawn from a pooled buffer: one getRandomValues
// call per id would cost more than the rest of a wrapped call's bookkeeping.
const POOL = new Uint8Array(4096);
let poolPos = POOL.length;
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function randomHex(bytes: number): string {
  if (poolPos + bytes > POOL.length) {
    globalThis.crypto.getRandomValues(POOL);
    poolPos = 0;
  }
  let s = "";
  for (let i = 0; i < bytes; i++) s += HEX[POOL[poolPos++]!];
  return s;
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

/** The event_id named by `name` (uuidv8FromSha256): stored once however often it is recorded. */
export const namedEventId = (name: string): string =>
  uuidv8FromSha256(createHash("sha256").update(name).digest("hex"));

/**
 * The event_id of a background response's llm record: the same whoever records it (a poll, its stream read
 * to its end), in any process, so it is stored, and counted, once.
 */
export const responseEventId = (responseId: string): string => namedEventId(`openai-response:${responseId}`);
