/** One dispatched Server-Sent Event. `event` is absent for the default ("message") type. */
export interface SseEvent {
  event?: string;
  data: string;
}

const LF = 10;
const COLON = 58;
const SPACE = 32;
const BOM = 0xfeff;

/**
 * Incremental Server-Sent Events parser (WHATWG HTML "event stream interpretation") for the
 * proxy's hot path: chunks may split anywhere, even between the CR and LF of one line ending.
 * Lines are found with indexOf (native scan) rather than per-character work, and a line split
 * across chunks is kept as pieces joined once, so a long line arriving in many small chunks
 * stays linear.
 */
export class SseParser {
  /** Pieces of the current line not yet terminated. */
  private partial: string[] = [];
  /** The previous chunk ended with CR: a LF opening the next chunk belongs to the same line ending. */
  private pendingCr = false;
  private started = false;
  private data = "";
  private hasData = false;
  private eventType = "";

  /** Feeds a decoded chunk; returns the events completed by it, in order. */
  push(chunk: string): SseEvent[] {
    const out: SseEvent[] = [];
    const len = chunk.length;
    if (len === 0) return out;
    let pos = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk.charCodeAt(0) === LF) pos = 1;
    }
    if (!this.started) {
      this.started = true;
      if (chunk.charCodeAt(pos) === BOM) pos++; // a leading BOM is not part of the first field name
    }
    // Next LF / CR at or after pos; -1 = none left in this chunk (never search again).
    let lf = -2;
    let cr = -2;
    while (pos < len) {
      if (lf !== -1 && lf < pos) lf = chunk.indexOf("\n", pos);
      if (cr !== -1 && cr < pos) cr = chunk.indexOf("\r", pos);
      if (lf === -1 && cr === -1) {
        this.partial.push(chunk.slice(pos));
        break;
      }
      const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      const piece = chunk.slice(pos, end);
      let line = piece;
      if (this.partial.length > 0) {
        this.partial.push(piece);
        line = this.partial.join("");
        this.partial = [];
      }
      this.processLine(line, out);
      pos = end + 1;
      if (end === cr) {
        if (pos === len) this.pendingCr = true;
        else if (chunk.charCodeAt(pos) === LF) pos++;
      }
    }
    return out;
  }

  /**
   * Ends the stream. Unlike a browser, this also dispatches a last event that lacks its closing
   * blank line: a truncated final event is usually the one carrying usage. Resets the parser.
   */
  flush(): SseEvent[] {
    const out: SseEvent[] = [];
    if (this.partial.length > 0) {
      const line = this.partial.join("");
      this.partial = [];
      this.processLine(line, out);
    }
    this.dispatch(out);
    this.pendingCr = false;
    this.started = false;
    return out;
  }

  private processLine(line: string, out: SseEvent[]): void {
    if (line.length === 0) {
      this.dispatch(out);
      return;
    }
    if (line.charCodeAt(0) === COLON) return; // comment (often a keep-alive)
    const colon = line.indexOf(":");
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      const start = line.charCodeAt(colon + 1) === SPACE ? colon + 2 : colon + 1;
      value = line.slice(start);
    }
    if (field === "data") {
      this.data = this.hasData ? `${this.data}\n${value}` : value;
      this.hasData = true;
    } else if (field === "event") {
      this.eventType = value;
    }
    // `id`, `retry` and unknown fields do not matter for usage extraction.
  }

  private dispatch(out: SseEvent[]): void {
    if (this.hasData) {
      out.push(this.eventType === "" ? { data: this.data } : { event: this.eventType, data: this.data });
    }
    this.data = "";
    this.hasData = false;
    this.eventType = "";
  }
}

/** Parses a complete SSE text in one go. */
export function parseSse(text: string): SseEvent[] {
  const parser = new SseParser();
  const events = parser.push(text);
  for (const event of parser.flush()) events.push(event);
  return events;
}
