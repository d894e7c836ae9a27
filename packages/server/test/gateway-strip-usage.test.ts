// The usage chunk the gateway asked for is taken out again, and nothing else of the stream changes.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { UsageChunkStripper } from "../src/gateway/strip-usage.js";

const FIXTURE = readFileSync(
  new URL(
    "../../../../shared/fixtures/providers/openai/chat-completion.stream.gpt-4o-mini.include-usage.sse",
    import.meta.url,
  ),
  "utf8",
);

function stripBytes(pieces: Buffer[]): Buffer {
  const s = new UsageChunkStripper();
  return Buffer.concat([...pieces.map((p) => s.push(p)), s.end()]);
}

const stripAll = (pieces: string[]): string => stripBytes(pieces.map((p) => Buffer.from(p))).toString();

const dataOf = (text: string) =>
  text
    .split(/\r\n|\r|\n/)
    .filter((l) => l.startsWith("data: "))
    .map((l) => l.slice(6));

describe("UsageChunkStripper", () => {
  it("a real include_usage stream: the usage chunk and every usage:null go, every other chunk stays as sent", () => {
    const out = stripAll([FIXTURE]);
    const before = dataOf(FIXTURE);
    const after = dataOf(out);
    expect(before.at(-2)).toMatch(/"choices":\[\],"usage":\{/); // the added chunk, before [DONE]
    expect(after).toHaveLength(before.length - 1);
    expect(after.at(-1)).toBe("[DONE]");
    expect(out).not.toContain('"usage"');
    const chunks = before.filter((d) => d !== "[DONE]" && !d.includes('"usage":{'));
    expect(after.slice(0, -1).map((d) => JSON.parse(d))).toEqual(
      chunks.map((d) => {
        const { usage, ...rest } = JSON.parse(d);
        expect(usage).toBeNull();
        return rest;
      }),
    );
    // The chunks keep their own key order and spelling: only the usage field is cut out of the text.
    expect(after[0]).toBe(chunks[0]!.replace(',"usage":null', ""));
  });

  it("the same stream from a server that spaces its JSON (Python's json.dumps): stripped all the same", () => {
    const spaced = dataOf(FIXTURE)
      .map(
        (d) =>
          `data: ${d === "[DONE]" ? d : JSON.stringify(JSON.parse(d)).replace(/([,:])(?=["{[\dntf-])/g, "$1 ")}\n\n`,
      )
      .join("");
    expect(spaced).toMatch(/"usage": null/);
    const after = dataOf(stripAll([spaced]));
    expect(after).toHaveLength(dataOf(FIXTURE).length - 1);
    expect(after.join("\n")).not.toContain('"usage"');
    expect(after.at(-1)).toBe("[DONE]");
    for (const d of after.slice(0, -1)) expect(JSON.parse(d).choices).toHaveLength(1);
  });

  it("gives the same output however the stream is cut into pieces", () => {
    const whole = stripAll([FIXTURE]);
    for (let k = 1; k < FIXTURE.length; k += 7)
      expect(stripAll([FIXTURE.slice(0, k), FIXTURE.slice(k)])).toBe(whole);
    expect(stripAll([...FIXTURE])).toBe(whole);
  });

  it("keeps the stream's framing: CRLF line ends, comments, id and retry fields", () => {
    const crlf = FIXTURE.replaceAll("\n", "\r\n");
    const out = stripAll([...crlf]); // one character at a time: CR and LF arrive apart
    expect(out).toBe(stripAll([FIXTURE]).replaceAll("\n", "\r\n"));

    const framed =
      ": keep-alive\n\n" +
      'id: 7\nretry: 1500\ndata: {"choices":[{"delta":{"content":"Hi"}}],"usage":null}\n\n' +
      ": ping\r\r" +
      'data: {"choices":[],"usage":{"prompt_tokens":3}}\n\n' +
      "data: [DONE]\n\n";
    expect(stripAll([framed])).toBe(
      ': keep-alive\n\nid: 7\nretry: 1500\ndata: {"choices":[{"delta":{"content":"Hi"}}]}\n\n: ping\r\rdata: [DONE]\n\n',
    );
  });

  it("passes every other byte as sent: bytes that are not UTF-8, and characters cut between chunks", () => {
    const event = (content: Buffer) =>
      Buffer.concat([
        Buffer.from('data: {"choices":[{"delta":{"content":"'),
        content,
        Buffer.from('"}}],"usage":null}\n\n'),
      ]);
    const stray = Buffer.from([0xff, 0xc3, 0x28, 0xe9]); // invalid UTF-8: a lone 0xff, a broken pair, Latin-1 é
    const emoji = Buffer.from("caf\u00e9 \u{1f600}"); // 2- and 4-byte characters
    const stream = Buffer.concat([
      event(stray),
      event(emoji),
      Buffer.from('data: {"choices":[],"usage":{"prompt_tokens":3}}\n\ndata: [DONE]\n\n'),
    ]);
    const expected = Buffer.concat([
      Buffer.from('data: {"choices":[{"delta":{"content":"'),
      stray,
      Buffer.from('"}}]}\n\ndata: {"choices":[{"delta":{"content":"'),
      emoji,
      Buffer.from('"}}]}\n\ndata: [DONE]\n\n'),
    ]);
    expect(stripBytes([stream]).equals(expected)).toBe(true);
    // One byte at a time: every multi-byte character arrives cut apart.
    const bytes = [...stream].map((b) => Buffer.from([b]));
    expect(stripBytes(bytes).equals(expected)).toBe(true);
  });

  it("an event of several data: lines loses every usage:null, each with its own comma", () => {
    expect(
      stripAll([
        'data: {"choices":[{"index":0}],"usage":null}\ndata: {"usage":null, "choices":[{"index":1}]}\n\n',
      ]),
    ).toBe('data: {"choices":[{"index":0}]}\ndata: {"choices":[{"index":1}]}\n\n');
  });

  it("a stream that ends without its final blank line: the rest still goes out", () => {
    expect(stripAll(['data: {"choices":[{"index":0}],"usage":null}\n\ndata: [DONE]'])).toBe(
      'data: {"choices":[{"index":0}]}\n\ndata: [DONE]',
    );
  });
});
