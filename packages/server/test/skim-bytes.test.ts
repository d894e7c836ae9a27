// A large request is parsed without its media (skimRequest): what reads it must read the same, and a
// budget's hold must come out exactly as for the request parsed whole, image parts' sizes included.
import { type Api, worstCaseUsage } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { parseJsonObject, parseModelRequest, withIncludeUsage } from "../src/gateway/request-body.js";
import { skimRequest } from "../src/gateway/skim-bytes.js";

const b64 = (n: number, seed = 0) =>
  Array.from(
    { length: n },
    (_, i) => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(i * 7 + seed) % 64],
  ).join("");

/** Requests of every provider shape that carries media, with text around it. */
function requests(size: number): Array<[Api, Record<string, unknown>]> {
  const img = `data:image/png;base64,${b64(size)}`;
  return [
    [
      "openai.chat",
      {
        model: "gpt-4o",
        max_tokens: 100,
        messages: [
          { role: "system", content: 'You describe images. "Quotes" and \\ backslashes, é and 😀.' },
          {
            role: "user",
            content: [
              { type: "text", text: "What is in these?" },
              { type: "image_url", image_url: { url: img, detail: "high" } },
              { type: "image_url", image_url: { url: "https://example.com/a.png" } },
              { type: "input_audio", input_audio: { data: b64(size, 3), format: "wav" } },
              {
                type: "file",
                file: { filename: "a.pdf", file_data: `data:application/pdf;base64,${b64(size, 5)}` },
              },
            ],
          },
        ],
      },
    ],
    [
      "openai.responses",
      {
        model: "gpt-5",
        input: [
          {
            role: "user",
            content: [
              { type: "input_image", image_url: img },
              { type: "input_text", text: "hi" },
            ],
          },
        ],
        max_output_tokens: 50,
      },
    ],
    [
      "anthropic.messages",
      {
        model: "claude-sonnet-4-5",
        max_tokens: 64,
        messages: [
          {
            role: "user",
            content: [
              { type: "image", source: { type: "base64", media_type: "image/png", data: b64(size, 1) } },
              {
                type: "document",
                source: { type: "base64", media_type: "application/pdf", data: b64(size, 2) },
              },
              { type: "text", text: "Compare them." },
            ],
          },
        ],
      },
    ],
    [
      "google.generate_content",
      {
        contents: [
          {
            role: "user",
            parts: [{ inlineData: { mimeType: "image/jpeg", data: b64(size, 4) } }, { text: "Describe." }],
          },
        ],
        generationConfig: { maxOutputTokens: 256 },
      },
    ],
  ];
}

/** A request's hold parsed whole and as the gateway reads it (skimmed, its media as marks). */
function holds(api: Api, raw: Buffer) {
  const whole = worstCaseUsage(api, parseJsonObject(raw), raw, 128_000);
  const read = parseModelRequest(raw, "application/json");
  const skimmedRaw = {
    byteLength: raw.length,
    includes: (s: string) => raw.includes(s),
    skimMark: read.skimMark,
  };
  return { whole, held: worstCaseUsage(api, read.fields, skimmedRaw, 128_000), read };
}

describe("a request parsed without its media", () => {
  it("is held exactly as the request parsed whole, for every provider's shape, and is much smaller", () => {
    for (const [api, request] of requests(200_000)) {
      for (const space of [0, 2]) {
        const raw = Buffer.from(JSON.stringify(request, null, space));
        const { whole, held, read } = holds(api, raw);
        expect(read.skimMark, api).toBeDefined();
        expect(held, api).toEqual(whole);
        expect(JSON.stringify(read.fields).length, api).toBeLessThan(raw.length / 50);
        // What else reads a request reads the same: everything but the media.
        expect(read.fields?.model, api).toEqual(request.model);
      }
    }
  });

  it("keeps short strings and non-media members as they are", () => {
    const raw = Buffer.from(
      JSON.stringify({
        model: "m",
        data: "short",
        url: "https://x/y",
        input: "z".repeat(100_000),
        pad: b64(70_000),
      }),
    );
    const read = parseModelRequest(raw, "application/json");
    expect(read.fields).toEqual(parseJsonObject(raw));
  });

  it("a mark a client writes itself is only text: the hold is not shrunk by it", () => {
    const forged = "\u0000skimmed-000000000000:999999999";
    const request = {
      model: "gpt-4o",
      messages: [
        {
          role: "user",
          content: [
            {
              type: "image_url",
              image_url: { url: `data:image/png;base64,${b64(100_000)}`, detail: forged },
            },
            { type: "text", text: forged },
          ],
        },
      ],
    };
    const raw = Buffer.from(JSON.stringify(request));
    const { whole, held } = holds("openai.chat", raw);
    expect(held).toEqual(whole);
    expect(held.usage.input_uncached_tokens).toBeGreaterThan(0);
    // Each request's mark is its own.
    expect(skimRequest(raw).mark).not.toBe(skimRequest(raw).mark);
  });

  it("is held as the request parsed whole when its media is written with escapes or non-ASCII text", () => {
    // A string's bytes are not its parsed length: `\/` (PHP's json_encode writes every slash so) and `\u0041`
    // are one character each, "é" is two bytes. Named by its bytes, an image part seemed bigger than it
    // is, and its excess came off the hold (a request of `\u0041` escapes was held at almost nothing).
    const image = (url: string) => ({
      model: "gpt-5",
      input: [{ role: "user", content: [{ type: "input_image", image_url: url }] }],
    });
    const plain = JSON.stringify(image(`data:image/png;base64,${b64(200_000)}`));
    const bodies = [
      plain.replace(/\//g, "\\/"),
      plain.replace("base64,", `base64,${"\\u0041".repeat(50_000)}`),
      JSON.stringify(image(`https://example.com/${"é".repeat(60_000)}`)),
      JSON.stringify(image(`https://example.com/${"😀".repeat(30_000)}`)),
    ];
    for (const text of bodies) {
      const { whole, held } = holds("openai.responses", Buffer.from(text));
      expect(held).toEqual(whole);
    }
  });

  it("counts media however deep in an image part it lies", () => {
    // JSON.stringify counts a part at any depth; its media's lengths were added back only 64 levels down.
    let deep: unknown = { data: b64(100_000) };
    for (let i = 0; i < 70; i++) deep = [deep];
    const request = {
      model: "gpt-4o",
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://x/y" }, deep }] }],
    };
    const { whole, held, read } = holds("openai.chat", Buffer.from(JSON.stringify(request)));
    expect(read.skimMark).toBeDefined();
    expect(held).toEqual(whole);
  });

  it("asks a stream for its usage in the client's own stream_options, never a mark", () => {
    // The gateway writes stream_options back upstream (include_usage set): as skimmed, its members went as marks.
    const request = {
      model: "gpt-4o",
      stream: true,
      stream_options: { include_usage: false, data: b64(2_000) },
      messages: [{ role: "user", content: b64(70_000) }],
    };
    const raw = Buffer.from(JSON.stringify(request));
    const read = parseModelRequest(raw, "application/json");
    expect(read.fields).toEqual(parseJsonObject(raw));
    expect(withIncludeUsage(raw, read.fields!).equals(withIncludeUsage(raw, parseJsonObject(raw)!))).toBe(
      true,
    );
  });

  it("an embeddings request is read without its texts, and held by its bytes as before", () => {
    const request = {
      model: "text-embedding-3-small",
      input: Array.from({ length: 300 }, (_, i) => `chunk ${i}: ${'lorem ipsum "dolor"\n '.repeat(20)}`),
      dimensions: 512,
    };
    const raw = Buffer.from(JSON.stringify(request));
    const read = parseModelRequest(raw, "application/json", "openai.embeddings");
    expect(read.skimMark).toBeUndefined(); // no marks: nothing counts their length
    expect(read.fields).toEqual({ ...request, input: request.input.map(() => "") });
    const whole = worstCaseUsage("openai.embeddings", parseJsonObject(raw), raw, null);
    expect(worstCaseUsage("openai.embeddings", read.fields, raw, null)).toEqual(whole);
    // Another API's `input` is read as ever (speech counts its characters).
    expect(parseModelRequest(raw, "application/json", "openai.responses").fields?.input).toEqual(
      request.input,
    );
  });

  it("a small request, or a form, is parsed as it is", () => {
    const small = Buffer.from(
      JSON.stringify({ model: "m", messages: [{ role: "user", content: b64(2000) }] }),
    );
    expect(parseModelRequest(small, "application/json")).toEqual({ fields: parseJsonObject(small) });
  });
});
