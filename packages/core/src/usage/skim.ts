// A large reply is mostly bytes no usage reader looks at: images, audio and embeddings as base64 (or
// embeddings as numbers). Parsing them whole held the event loop: a reply of ten images (~40 MB) took
// ~260 ms to decode and parse, stalling every other call through the gateway meanwhile. Skimming drops
// those values before parsing, jumping over them with indexOf (memchr on bytes). A large request is
// mostly its media (base64 images, audio, files), which nothing reads but a budget's hold counts the
// length of: those are replaced by a mark that says how long they were (skimmedLength).

/** A JSON text as character codes (an SSE event's data) or as UTF-8 bytes (a whole reply body). */
export interface JsonSource {
  readonly length: number;
  /** The code at `i` (a character code or a byte; JSON's syntax is ASCII either way). */
  at(i: number): number;
  /** The first index at or after `from` of `code`, or -1. */
  find(code: number, from: number): number;
  /** Whether [from, to) holds `code`. */
  holds(code: number, from: number, to: number): boolean;
}

/** A text shorter than this is parsed as it is: skimming pays off only for bodies that carry payloads. */
export const SKIM_OVER = 64 * 1024;

/** Which members' values a skim leaves out: their strings (and `arrayKey`'s flat array of numbers). */
export interface SkimRule {
  keys: readonly string[];
  arrayKey?: string;
  /** The member whose array of strings has each string left out (an embeddings request's `input`). */
  listKey?: string;
  /** Strings shorter than this (JSON text between the quotes) are kept. */
  minLength: number;
}

/**
 * A reply's payloads, never usage: image bytes (Images API, its streams, the Responses image tool's
 * `result` and partial images), audio and inline media (`data`), embeddings. Only their string values are
 * dropped (and an embedding's flat array of numbers): `data` holding the Images API's list, or a batch
 * line's `result` object, are read as ever.
 */
export const REPLY_PAYLOADS: SkimRule = {
  keys: ["b64_json", "partial_image_b64", "result", "data", "embedding"],
  arrayKey: "embedding",
  minLength: 0,
};

/**
 * A request's media: data URLs (chat `image_url.url`, Responses `image_url`), base64 images, audio and
 * documents (`data`: Anthropic's `source.data`, chat `input_audio.data`, Gemini's `inlineData.data`) and
 * files (`file_data`). What reads a request reads none of them; a hold counts their length (skimmedLength).
 */
export const REQUEST_MEDIA: SkimRule = { keys: ["url", "image_url", "data", "file_data"], minLength: 1024 };

/**
 * An embeddings request's texts (`input`: a string or a list of them): nothing reads them, and its hold is
 * its bytes as sent. A RAG pipeline's batch of 2,048 chunks runs to megabytes.
 */
export const EMBEDDING_INPUTS: SkimRule = { keys: ["input"], listKey: "input", minLength: 256 };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;

/**
 * The spans [start, end) inside payload values to leave out: a string's characters between its quotes,
 * an embedding array's numbers between its brackets. What is left stays valid JSON (`""`, `[]`). Text
 * whose structure is not valid JSON stays invalid (an unclosed string ends the scan). A payload's own
 * content is not checked, on purpose: a reply whose image bytes hold a bad escape or whose embedding holds
 * `NaN` is read for its usage here, where a whole parse would refuse it. The provider billed that call all
 * the same, and checking every byte of a payload cost 5–10× the skim itself (a review measured it).
 */
export function payloadSpans(src: JsonSource, rule: SkimRule = REPLY_PAYLOADS): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  let key: string | null = null;
  for (let open = src.find(QUOTE, 0); open !== -1; ) {
    const close = closingQuote(src, open);
    if (close === -1) break;
    const next = skipSpace(src, close + 1);
    if (next < src.length && src.at(next) === COLON) {
      key = payloadKey(src, open + 1, close, rule.keys);
      const value = skipSpace(src, next + 1);
      if (key !== null && key === rule.listKey && src.at(value) === OPEN_BRACKET) {
        key = null;
        open = src.find(QUOTE, stringListSpans(src, value, rule.minLength, spans));
        continue;
      }
      if (key !== null && key === rule.arrayKey && src.at(value) === OPEN_BRACKET) {
        const end = flatArrayEnd(src, value);
        if (end !== -1) {
          if (end > value + 1) spans.push([value + 1, end]);
          key = null;
          open = src.find(QUOTE, end);
          continue;
        }
      }
    } else if (key !== null && src.at(skipSpaceBack(src, open - 1)) === COLON) {
      if (close > open + 1 && close - open - 1 >= rule.minLength) spans.push([open + 1, close]);
      key = null;
    } else key = null;
    open = src.find(QUOTE, close + 1);
  }
  return spans;
}

/** `text` without its payload values, when it is longer than `over` (long enough to carry any worth skipping). */
export function skimJson(text: string, over = SKIM_OVER, rule: SkimRule = REPLY_PAYLOADS): string {
  if (text.length <= over) return text;
  const spans = payloadSpans(stringSource(text), rule);
  if (spans.length === 0) return text;
  let out = "";
  let at = 0;
  for (const [start, end] of spans) {
    out += text.slice(at, start);
    at = end;
  }
  return out + text.slice(at);
}

function stringSource(text: string): JsonSource {
  return {
    length: text.length,
    at: (i) => text.charCodeAt(i),
    find: (code, from) => text.indexOf(String.fromCharCode(code), from),
    // A slice is a view in V8 (no copy), and bounds the search: an unbounded one made many arrays quadratic.
    holds: (code, from, to) => text.slice(from, to).includes(String.fromCharCode(code)),
  };
}

/** The quote closing the string opened at `open` (one not escaped by an odd run of backslashes), or -1. */
function closingQuote(src: JsonSource, open: number): number {
  for (let q = src.find(QUOTE, open + 1); q !== -1; q = src.find(QUOTE, q + 1)) {
    let slashes = 0;
    while (src.at(q - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return q;
  }
  return -1;
}

/**
 * Adds the spans of the strings (of `minLength` or more) of the array opened at `open`; returns where the
 * array ends, or where it turned out not to be a list of strings (token ids, nesting): read on from there.
 */
function stringListSpans(
  src: JsonSource,
  open: number,
  minLength: number,
  spans: Array<[number, number]>,
): number {
  let i = skipSpace(src, open + 1);
  while (src.at(i) === QUOTE) {
    const close = closingQuote(src, i);
    if (close === -1) return src.length;
    if (close - i - 1 >= Math.max(1, minLength)) spans.push([i + 1, close]);
    i = skipSpace(src, close + 1);
    if (src.at(i) === CLOSE_BRACKET) return i + 1;
    if (src.at(i) !== COMMA) return i;
    i = skipSpace(src, i + 1);
  }
  return i;
}

/** The payload key spelled by [start, end), or null (a key written with escapes is not one: read as ever). */
function payloadKey(src: JsonSource, start: number, end: number, keys: readonly string[]): string | null {
  for (const key of keys) {
    if (key.length !== end - start) continue;
    let i = 0;
    while (i < key.length && src.at(start + i) === key.charCodeAt(i)) i++;
    if (i === key.length) return key;
  }
  return null;
}

/**
 * The `]` of a flat array opened at `open` (no strings, objects or arrays inside), or -1. Looked for in
 * windows that double, each checked before the next: a search for the `]` first went on to an innermost
 * array of a nested one, the same half of the text for each array (quadratic).
 */
function flatArrayEnd(src: JsonSource, open: number): number {
  for (let from = open + 1, width = 16; from < src.length; from += width, width *= 2) {
    const to = Math.min(src.length, from + width);
    const end = src.holds(CLOSE_BRACKET, from, to) ? src.find(CLOSE_BRACKET, from) : -1;
    for (const code of [QUOTE, OPEN_BRACE, OPEN_BRACKET])
      if (src.holds(code, from, end === -1 ? to : end)) return -1;
    if (end !== -1) return end;
  }
  return -1;
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function skipSpace(src: JsonSource, i: number): number {
  while (i < src.length && isSpace(src.at(i))) i++;
  return i;
}

function skipSpaceBack(src: JsonSource, i: number): number {
  while (i > 0 && isSpace(src.at(i))) i--;
  return i;
}

/**
 * The bytes of media a parsed request's skim left out within `v`: each string that starts with `mark` (a
 * skim's own, unguessable: see the server's request skim) stands for a string of the length it names, as
 * JSON text between the quotes; this is that length less the mark's own.
 */
export function skimmedLength(v: unknown, mark: string): number {
  // At any depth, as JSON.stringify counts the part (walked without recursion: no depth limit to stop at).
  let sum = 0;
  for (const stack = [v]; stack.length > 0; ) {
    const x = stack.pop();
    if (typeof x === "string") {
      if (!x.startsWith(mark)) continue;
      const n = Number(x.slice(mark.length));
      if (Number.isSafeInteger(n) && n > 0) sum += n - (JSON.stringify(x).length - 2);
    } else if (typeof x === "object" && x !== null)
      for (const y of Array.isArray(x) ? x : Object.values(x)) stack.push(y);
  }
  return sum;
}
