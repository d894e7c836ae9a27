import { describe, expect, it } from "vitest";
import { type Api, createSseUsageExtractor, parseSse, type SseEvent, SseParser } from "../src/usage/index.js";
import { listFixtureFiles, readFixtureBytes } from "./fixtures.js";
import { rng } from "./rng.js";

function all(parser: SseParser, chunks: string[]): SseEvent[] {
  const out: SseEvent[] = [];
  for (const chunk of chunks) out.push(...parser.push(chunk));
  out.push(...parser.flush());
  return out;
}

describe("SseParser", () => {
  it("parses LF, CRLF and lone-CR line endings alike", () => {
    const expected = [{ data: "a" }, { event: "x", data: "b" }];
    for (const eol of ["\n", "\r\n", "\r"]) {
      const text = ["data: a", "", "event: x", "data: b", "", ""].join(eol);
      expect(all(new SseParser(), [text])).toEqual(expected);
    }
  });

  it("joins multi-line data with LF and strips one leading space only", () => {
    expect(parseSse("data: one\ndata:two\ndata:  three\n\n")).toEqual([{ data: "one\ntwo\n three" }]);
  });

  it("ignores comments, id/retry and unknown fields; a field without colon has an empty value", () => {
    const text = ": keep-alive\n\nid: 7\nretry: 10\nfoo: bar\ndata\n\n:comment\ndata: x\n\n";
    expect(parseSse(text)).toEqual([{ data: "" }, { data: "x" }]);
  });

  it("does not dispatch events without data, and resets the event type after each dispatch", () => {
    expect(parseSse("event: ping\n\ndata: a\n\n")).toEqual([{ data: "a" }]);
  });

  it("returns events as soon as their blank line arrives, even mid-chunk", () => {
    const parser = new SseParser();
    expect(parser.push("data: a\n\ndata: b")).toEqual([{ data: "a" }]);
    expect(parser.push("\n")).toEqual([]);
    expect(parser.push("\n")).toEqual([{ data: "b" }]);
    expect(parser.flush()).toEqual([]);
  });

  it("treats CR at the end of one chunk and LF at the start of the next as one line ending", () => {
    expect(all(new SseParser(), ["data: a\r", "\n\r", "\ndata: b\r\n\r\n"])).toEqual([
      { data: "a" },
      { data: "b" },
    ]);
  });

  it("strips a leading BOM", () => {
    expect(parseSse("\uFEFFdata: a\n\n")).toEqual([{ data: "a" }]);
  });

  it("flush() delivers a final event that lacks its blank line (and a final unterminated line)", () => {
    expect(all(new SseParser(), ["data: a\n\ndata: b"])).toEqual([{ data: "a" }, { data: "b" }]);
    expect(all(new SseParser(), ["data: a\n"])).toEqual([{ data: "a" }]);
  });

  it("keeps a long line split over many tiny chunks intact", () => {
    const payload = "x".repeat(100_000);
    const text = `data: ${payload}\n\n`;
    const chunks: string[] = [];
    for (let i = 0; i < text.length; i += 7) chunks.push(text.slice(i, i + 7));
    expect(all(new SseParser(), chunks)).toEqual([{ data: payload }]);
  });
});

function sameEvents(a: SseEvent[], b: SseEvent[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.data !== y.data || x.event !== y.event) return false;
  }
  return true;
}

const SSE_FIXTURES = [...listFixtureFiles("providers"), ...listFixtureFiles("conformance/payloads")].filter(
  (f) => f.endsWith(".sse"),
);

function apiOf(file: string): Api {
  if (file.includes("/google/")) return "google.generate_content";
  if (file.includes("/anthropic/")) return "anthropic.messages";
  if (file.includes("/openai/responses")) return "openai.responses";
  return "openai.chat";
}

describe("SSE fixtures split at arbitrary byte boundaries", () => {
  it("finds every .sse fixture", () => {
    expect(SSE_FIXTURES.length).toBe(8);
  });

  it.each(SSE_FIXTURES)("%s: every single split point gives the same events", (file) => {
    const bytes = readFixtureBytes(file);
    const baseline = all(new SseParser(), [new TextDecoder().decode(bytes)]);
    expect(baseline.length).toBeGreaterThan(2);
    const failures: number[] = [];
    for (let cut = 0; cut <= bytes.length; cut++) {
      // The proxy decodes bytes with a streaming TextDecoder, so a cut may fall inside a UTF-8 sequence.
      const decoder = new TextDecoder();
      const parser = new SseParser();
      const events = parser.push(decoder.decode(bytes.subarray(0, cut), { stream: true }));
      events.push(...parser.push(decoder.decode(bytes.subarray(cut))));
      events.push(...parser.flush());
      if (!sameEvents(events, baseline)) failures.push(cut);
    }
    expect(failures).toEqual([]);
  });

  it.each(SSE_FIXTURES)("%s: seeded random multi-way splits give the same events and usage", (file) => {
    const bytes = readFixtureBytes(file);
    const api = apiOf(file);
    const baseline = all(new SseParser(), [new TextDecoder().decode(bytes)]);
    const whole = createSseUsageExtractor(api);
    whole.push(new TextDecoder().decode(bytes));
    const baselineUsage = whole.result();
    expect(baselineUsage).not.toBeNull();
    for (let seed = 1; seed <= 100; seed++) {
      const random = rng(seed);
      const maxPiece = seed % 3 === 0 ? 3 : seed % 3 === 1 ? 64 : 2048; // byte-sized to large chunks
      const decoder = new TextDecoder();
      const parser = new SseParser();
      const usage = createSseUsageExtractor(api);
      const events: SseEvent[] = [];
      for (let pos = 0; pos < bytes.length; ) {
        const size = 1 + Math.floor(random() * maxPiece);
        const text = decoder.decode(bytes.subarray(pos, pos + size), { stream: true });
        events.push(...parser.push(text));
        usage.push(text);
        pos += size;
      }
      const tail = decoder.decode();
      events.push(...parser.push(tail), ...parser.flush());
      usage.push(tail);
      expect(sameEvents(events, baseline), `seed ${seed}`).toBe(true);
      expect(usage.result(), `seed ${seed}`).toEqual(baselineUsage);
    }
  });
});

describe("errors inside a stream", () => {
  const errorOf = (api: Api, text: string) => {
    const x = createSseUsageExtractor(api);
    x.push(text);
    x.result();
    return x.error();
  };

  it("every real fixture stream is error-free", () => {
    for (const file of SSE_FIXTURES)
      expect(errorOf(apiOf(file), new TextDecoder().decode(readFixtureBytes(file))), file).toBeNull();
  });

  it("names the provider's error type: Anthropic's error event, an OpenAI error chunk, a failed Response", () => {
    expect(
      errorOf(
        "anthropic.messages",
        'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-sonnet-4-5","usage":{"input_tokens":9,"output_tokens":1}}}\n\n' +
          'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
      ),
    ).toBe("overloaded_error");
    expect(
      errorOf(
        "openai.chat",
        'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"\\"error\\": hi"}}]}\n\n' +
          'data: {"error":{"message":"The server had an error","type":"server_error","code":null}}\n\n',
      ),
    ).toBe("server_error");
    expect(
      errorOf(
        "openai.responses",
        'data: {"type":"response.failed","response":{"id":"r","model":"gpt-5","status":"failed","error":{"code":"server_error","message":"x"}}}\n\n',
      ),
    ).toBe("server_error");
    expect(
      errorOf("openai.responses", 'data: {"type":"error","code":"rate_limit_exceeded","message":"x"}\n\n'),
    ).toBe("rate_limit_exceeded");
  });

  it("text that merely mentions an error is not one", () => {
    expect(
      errorOf(
        "openai.chat",
        'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"{\\"error\\": {\\"type\\": \\"x\\"}}"}}]}\n\n',
      ),
    ).toBeNull();
  });
});

describe("a stream's own end marker", () => {
  // Gemini's streams have no end marker (and the gateway does not relay them).
  const cases = SSE_FIXTURES.filter((f) => apiOf(f) !== "google.generate_content");

  it("covers the OpenAI and Anthropic stream fixtures", () => expect(cases.length).toBe(6));

  it.each(cases)("%s: seen at its end, not in its first half", (file) => {
    const api = apiOf(file);
    const text = new TextDecoder().decode(readFixtureBytes(file));
    const whole = createSseUsageExtractor(api);
    whole.push(text);
    whole.result();
    expect(whole.ended()).toBe(true);
    const half = createSseUsageExtractor(api);
    half.push(text.slice(0, Math.floor(text.length / 2)));
    half.result();
    expect(half.ended()).toBe(false);
  });
});
