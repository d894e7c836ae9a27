/**
 * Undoes what `stream_options.include_usage` adds to an OpenAI stream the client did not ask it for:
 * the `"usage":null` field of every chunk and the final usage-only chunk. Everything else passes as the
 * upstream sent it (comments, `id:`/`retry:` fields, CR/LF line endings, bytes that are not valid UTF-8),
 * so the client sees the stream it requested; the gateway still reads the usage (from the unmodified text).
 *
 * It works on bytes: each is read as one Latin-1 character, so the text searched maps back to the very
 * bytes sent (a UTF-8 decode would turn a stray byte into U+FFFD). What it looks for is all ASCII, and the
 * bytes of a multi-byte UTF-8 character are never ASCII, so nothing inside a character can match.
 */
export class UsageChunkStripper {
  /** Text of an event not yet complete (no blank line after it so far). */
  #pending = "";
  /** Where, in the pending text, the scan for its end resumes and the current line starts. */
  #scan = 0;
  #lineStart = 0;

  /** Feeds upstream bytes; returns the bytes to send to the client (possibly none). */
  push(chunk: Buffer): Buffer {
    const s = this.#pending + chunk.toString("latin1");
    let out = "";
    let start = 0;
    for (let end = this.#eventEnd(s); end !== -1; end = this.#eventEnd(s)) {
      out += strip(s.slice(start, end));
      start = this.#scan = this.#lineStart = end;
    }
    this.#pending = s.slice(start);
    this.#scan -= start;
    this.#lineStart -= start;
    return Buffer.from(out, "latin1");
  }

  /** The rest of a stream that ended without a final blank line. */
  end(): Buffer {
    const rest = this.#pending;
    this.#pending = "";
    this.#scan = this.#lineStart = 0;
    return Buffer.from(strip(rest), "latin1");
  }

  /**
   * Index just past the blank line that ends the pending event; -1 while it is incomplete. The scan goes
   * on from where the last one stopped, so an event arriving in many small chunks is read once.
   */
  #eventEnd(s: string): number {
    for (let i = this.#scan; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c !== LF && c !== CR) continue;
      let next = i + 1;
      if (c === CR) {
        // A CR that ends a chunk may be the first half of a CRLF: it is looked at again with the next
        // chunk (so with CR-only line ends an event goes out when the chunk after it arrives).
        if (next === s.length) {
          this.#scan = i;
          return -1;
        }
        if (s.charCodeAt(next) === LF) next++;
      }
      if (i === this.#lineStart) return next; // an empty line ends the event
      this.#lineStart = next;
      i = next - 1;
    }
    this.#scan = s.length;
    return -1;
  }
}

const LF = 10;
const CR = 13;

// Whitespace-tolerant: OpenAI sends compact JSON, but compatible servers may not (Python's json.dumps
// puts a space after every colon and comma). Inside a JSON string a quote is escaped, so these match keys.
const USAGE_OBJECT = /"usage"\s*:\s*\{/;
const NO_CHOICES = /"choices"\s*:\s*\[\s*\]/;
const USAGE_NULL_AFTER = /\s*,\s*"usage"\s*:\s*null/g;
const USAGE_NULL_BEFORE = /"usage"\s*:\s*null\s*,\s*/g;

/**
 * One whole event, as it goes to the client: dropped when it is the added usage chunk. Every `"usage":null`
 * goes (an event may carry several `data:` lines), the one after a comma first, so that each takes its
 * own comma with it.
 */
function strip(event: string): string {
  if (!event.includes('"usage"')) return event;
  if (USAGE_OBJECT.test(event) && NO_CHOICES.test(event)) return "";
  return event.replace(USAGE_NULL_AFTER, "").replace(USAGE_NULL_BEFORE, "");
}
