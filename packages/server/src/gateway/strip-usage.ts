import { SseParser } from "@tollgate/core";

/**
 * Undoes what `stream_options.include_usage` adds to an OpenAI stream the client did not ask it for:
 * the `"usage":null` field of every chunk and the final usage-only chunk. The client then sees the
 * stream it requested; the gateway still reads the usage (from the unmodified text).
 */
export class UsageChunkStripper {
  readonly #parser = new SseParser();

  /** Feeds upstream text; returns the text to send to the client (possibly empty). */
  push(text: string): string {
    return this.#render(this.#parser.push(text));
  }

  end(): string {
    return this.#render(this.#parser.flush());
  }

  #render(events: { event?: string; data: string }[]): string {
    let out = "";
    for (const e of events) {
      if (e.data.includes('"usage":{') && e.data.includes('"choices":[]')) continue; // the added usage chunk
      const data = e.data.replace(',"usage":null', "").replace('"usage":null,', "");
      out += `${e.event ? `event: ${e.event}\n` : ""}data: ${data}\n\n`;
    }
    return out;
  }
}
