/**
 * Undoes what `stream_options.include_usage` adds to an OpenAI stream the client did not ask it for:
 * the `"usage":null` field of every chunk and the final usage-only chunk. Everything else passes as the
 * upstream sent it (comments, `id:`/`retry:` fields, CR/LF line endings), so the client sees the stream
 * it requested; the gateway still reads the usage (from the unmodified text).
 */
export class UsageChunkStripper {
  /** Text of an event not yet complete (no blank line after it so far). */
  #pending = "";

  /** Feeds upstream text; returns the text to send to the client (possibly empty). */
  push(text: string): string {
    const s = this.#pending + text;
    let out = "";
    let start = 0;
    for (let end = eventEnd(s, start); end !== -1; end = eventEnd(s, start)) {
      out += strip(s.slice(start, end));
      start = end;
    }
    this.#pending = s.slice(start);
    return out;
  }

  /** The rest of a stream that ended without a final blank line. */
  end(): string {
    const rest = this.#pending;
    this.#pending = "";
    return strip(rest);
  }
}

const LF = 10;
const CR = 13;

/** Index just past the blank line that ends the event starting at `from`; -1 while it is incomplete. */
function eventEnd(s: string, from: number): number {
  let lineStart = from;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== LF && c !== CR) continue;
    let next = i + 1;
    if (c === CR) {
      if (next === s.length) return -1; // a CRLF split across chunks: wait for the next one
      if (s.charCodeAt(next) === LF) next++;
    }
    if (i === lineStart) return next; // an empty line ends the event
    lineStart = next;
    i = next - 1;
  }
  return -1;
}

/** One whole event, as it goes to the client: dropped when it is the added usage chunk. */
function strip(event: string): string {
  if (event.includes('"usage":{') && event.includes('"choices":[]')) return "";
  return event.includes('"usage":null')
    ? event.replace(',"usage":null', "").replace('"usage":null,', "")
    : event;
}
