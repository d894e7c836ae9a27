/**
 * Byte-level edits of a JSON object request body, leaving every other byte as the client sent it
 * (re-serializing would, for one, round integers past 2^53 and drop the client's spacing). The body is
 * valid JSON already (it was parsed), so the scan only needs to tell strings and nesting apart.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

/** Where a top-level member's value lies: bytes [start, end). */
interface Span {
  start: number;
  end: number;
}

/**
 * The spans of the values of top-level member `key` in a JSON object, in order: more than one when the key
 * repeats (JSON.parse keeps the last, other parsers the first or none). Keys are compared as JSON.parse
 * reads them, escapes included.
 */
export function topLevelValueSpans(body: Buffer, key: string): Span[] {
  const found: Span[] = [];
  let depth = 0;
  /** At depth 1, whether the next string is a member's key (not its value). */
  let expectKey = false;
  let memberKey: string | null = null;
  let valueStart = -1;
  const endMember = (i: number) => {
    if (memberKey === key && valueStart !== -1) found.push({ start: valueStart, end: trimEnd(body, i) });
    memberKey = null;
    valueStart = -1;
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === QUOTE) {
      const end = stringEnd(body, i);
      if (depth === 1 && expectKey) memberKey = JSON.parse(body.toString("utf8", i, end + 1)) as string;
      i = end;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth++ === 0) expectKey = true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (depth-- === 1) endMember(i);
    } else if (depth === 1 && c === COLON) {
      expectKey = false;
      valueStart = skipSpace(body, i + 1);
    } else if (depth === 1 && c === COMMA) {
      endMember(i);
      expectKey = true;
    }
  }
  return found;
}

/** `body` with the bytes of each of `spans` (in order, not overlapping) replaced by `text`. */
export function replaceSpans(body: Buffer, spans: readonly Span[], text: string): Buffer {
  const replacement = Buffer.from(text);
  const parts: Buffer[] = [];
  let at = 0;
  for (const span of spans) {
    parts.push(body.subarray(at, span.start), replacement);
    at = span.end;
  }
  parts.push(body.subarray(at));
  return Buffer.concat(parts);
}

/** `body` with the member `"key":json,` put first in its top-level object. */
export function prependMember(body: Buffer, key: string, json: string): Buffer {
  const open = body.indexOf(OPEN_BRACE); // only whitespace (or a byte-order mark) can come before it
  const member = Buffer.from(`${JSON.stringify(key)}:${json},`);
  return Buffer.concat([body.subarray(0, open + 1), member, body.subarray(open + 1)]);
}

/** The index of the quote that closes the string opened at `start`. */
function stringEnd(body: Buffer, start: number): number {
  for (let i = start + 1; i < body.length; i++) {
    const c = body[i];
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i;
  }
  return body.length - 1;
}

const isSpace = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function skipSpace(body: Buffer, i: number): number {
  while (isSpace(body[i])) i++;
  return i;
}

/** The end of a value whose next token is at `i`: the whitespace before that token is not the value's. */
function trimEnd(body: Buffer, i: number): number {
  while (isSpace(body[i - 1])) i--;
  return i;
}
