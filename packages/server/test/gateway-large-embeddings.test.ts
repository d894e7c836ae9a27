// A RAG pipeline's embeddings batch through the gateway, driven by the official `openai` SDK: its megabytes
// of text are not parsed (nothing reads them), the request goes upstream byte for byte, and the call is
// priced from the reply's usage.
import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { recordByEventId, testCases } from "./helpers.js";
import type { MockUpstream } from "./mock-upstream.js";
import { type OpenAIThroughGateway, openaiThroughGateway } from "./openai-gateway.js";

let mock: MockUpstream;
let gw: OpenAIThroughGateway["gw"];
let openai: OpenAI;
openaiThroughGateway((s) => ({ mock, gw, openai } = s));

const { newCase, tagged, upstreamOf } = testCases("embed", () => mock.requests);

describe("gateway: an embeddings batch of megabytes", () => {
  it("goes upstream byte for byte and is priced from its reply", async () => {
    const input = Array.from(
      { length: 2048 },
      (_, i) => `chunk ${i}: ${"The quick brown fox. ".repeat(100)}`,
    );
    const params = { model: "text-embedding-3-small", input, encoding_format: "float" as const };
    const id = newCase();
    const { data, response } = await openai.embeddings.create(params, tagged(id)).withResponse();
    expect(data.usage.prompt_tokens).toBeGreaterThan(0);
    const [sent] = upstreamOf(id);
    expect(sent!.bytes.equals(Buffer.from(JSON.stringify(params)))).toBe(true);
    expect(sent!.bytes.length).toBeGreaterThan(4_000_000);
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({
      api: "openai.embeddings",
      kind: "embedding",
      status: "ok",
      priced: true,
      input_uncached_tokens: data.usage.prompt_tokens,
    });
    expect(rec.cost_nanousd).toBeGreaterThan(0n);
  });
});
