// Skimming (core's payloadSpans) over a body's bytes: only what is kept is copied, then decoded and parsed.
import { isAscii } from "node:buffer";
import { randomBytes } from "node:crypto";
import { type JsonSource, payloadSpans, REQUEST_MEDIA, type SkimRule } from "@tollgate/core";

/** `body` without the values `rule` leaves out, each replaced by `fill(its length)` (JSON text), else nothing. */
export function skimBytes(body: Buffer, rule: SkimRule, fill?: (length: number) => string): Buffer {
  return spliced(body, payloadSpans(bytesSource(body), rule), fill);
}

function spliced(body: Buffer, spans: Array<[number, number]>, fill?: (length: number) => string): Buffer {
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
  // A mark names its string's bytes, which are its parsed length (and JSON.stringify's) only for ASCII
  // without escapes: `\/` or `\u0041` is one character, "é" two bytes. Any other is parsed as ever (named
  // by its bytes, an image part seemed longer than it is, and a hold came out short by the excess).
  const spans = payloadSpans(bytesSource(body), REQUEST_MEDIA).filter(([start, end]) => {
    const text = body.subarray(start, end);
    return isAscii(text) && !text.includes(BACKSLASH);
  });
  const skimmed = spliced(body, spans, (length) => `\\u0000skimmed-${nonce}:${length}`);
  return { body: skimmed, mark: `\u0000skimmed-${nonce}:` };
}

const BACKSLASH = 0x5c;

function bytesSource(buf: Buffer): JsonSource {
  return {
    length: buf.length,
    at: (i) => buf[i] ?? -1,
    find: (code, from) => buf.indexOf(code, from),
    holds: (code, from, to) => buf.subarray(from, to).includes(code),
  };
}
