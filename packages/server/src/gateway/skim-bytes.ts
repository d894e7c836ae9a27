// Skimming (core's payloadSpans) over a body's bytes: only what is kept is copied, then decoded and parsed.
import { randomBytes } from "node:crypto";
import { type JsonSource, payloadSpans, REQUEST_MEDIA, type SkimRule } from "@tollgate/core";

/** `body` without the values `rule` leaves out, each replaced by `fill(its length)` (JSON text), else nothing. */
export function skimBytes(body: Buffer, rule: SkimRule, fill?: (length: number) => string): Buffer {
  const spans = payloadSpans(bytesSource(body), rule);
  if (spans.length === 0) return body;
  const kept: Buffer[] = [];
  let at = 0;
  for (const [start, end] of spans) {
    kept.push(body.subarray(at, start));
    if (fill) kept.push(Buffer.from(fill(end - start)));
    at = end;
  }
  kept.push(body.subarray(at));
  return Buffer.concat(kept);
}

/**
 * A request body without its media (REQUEST_MEDIA), each left as a mark naming its length. The mark holds a
 * random part of its own, so that no client can write one into its request (a mark names the length a
 * budget's hold takes out of the request's text: a forged one would shrink the hold).
 */
export function skimRequest(body: Buffer): { body: Buffer; mark: string } {
  const nonce = randomBytes(6).toString("hex");
  const skimmed = skimBytes(body, REQUEST_MEDIA, (length) => `\\u0000skimmed-${nonce}:${length}`);
  return { body: skimmed, mark: `\u0000skimmed-${nonce}:` };
}

function bytesSource(buf: Buffer): JsonSource {
  return {
    length: buf.length,
    at: (i) => buf[i] ?? -1,
    find: (code, from) => buf.indexOf(code, from),
    holds: (code, from, to) => buf.subarray(from, to).includes(code),
  };
}
