// The Responses API's image generation tool: its own usage (`tool_usage.image_gen`) read beside the
// response's, as a call of its image model; the worst case a budget holds for it.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  buildCallRecord,
  createSseUsageExtractor,
  estimateCutShortUsage,
  extractFromResponse,
  extractFromSse,
  imageOutputTokens,
  imageToolWorstCase,
  PricingEngine,
  toolModelCallInput,
  worstCaseCost,
} from "../src/index.js";

const text = (name: string) =>
  readFileSync(new URL(`./fixtures/openai-images/${name}`, import.meta.url), "utf8");
const body = (name: string) => JSON.parse(text(name)) as Record<string, unknown>;
const engine = new PricingEngine();
const AT = Date.parse("2026-12-01T00:00:00Z");

describe("the Responses image generation tool", () => {
  it("its usage is read apart from the response's, whole and streamed, with the model the response names", () => {
    const whole = extractFromResponse(
      "openai.responses",
      body("responses.image-tool.gpt-5-nano.tool-usage.json"),
    );
    const streamed = extractFromSse(
      "openai.responses",
      text("responses.stream.image-tool.gpt-5-nano.tool-usage.sse"),
    )!;
    for (const u of [whole, streamed]) {
      // The response's own usage holds none of the image's tokens.
      expect(u.usage).toMatchObject({
        input_uncached_tokens: 3151,
        output_tokens: 1970,
        reasoning_tokens: 1920,
      });
      expect(u.tool_model_call).toEqual({
        api: "openai.images",
        model: null, // the reply's tools do not name it
        usage: expect.objectContaining({
          input_uncached_tokens: 25,
          image_tokens: 0,
          output_tokens: 272,
          output_image_tokens: 272,
        }),
        usage_raw: expect.objectContaining({ output_tokens: 272 }),
      });
    }
    // A tool that names its model: the response repeats it.
    const named = body("responses.image-tool.gpt-5-nano.tool-usage.json");
    named.tools = [{ type: "image_generation", model: "gpt-image-1-mini" }];
    expect(extractFromResponse("openai.responses", named).tool_model_call?.model).toBe("gpt-image-1-mini");
  });

  it("a reply whose tool made nothing (zeros) has no image call", () => {
    const zeros = body("responses.image-tool.gpt-5-nano.tool-usage.json");
    zeros.tool_usage = { image_gen: { input_tokens: 0, output_tokens: 0, total_tokens: 0 } };
    expect(extractFromResponse("openai.responses", zeros).tool_model_call).toBeNull();
    const none = body("responses.image-tool.gpt-5-nano.json");
    none.output = (none.output as { type: string }[]).filter((i) => i.type !== "image_generation_call");
    expect(extractFromResponse("openai.responses", none).tool_model_call).toBeUndefined();
  });

  it("a real reply without tool_usage: its image estimated from the item's quality and size (272 tokens, low 1024²)", () => {
    const u = extractFromResponse("openai.responses", body("responses.image-tool.gpt-5-nano.json"));
    // The revised prompt's 113 characters at ~4 a token; OpenAI's table for a low-quality square image.
    expect(u.tool_model_call).toEqual({
      api: "openai.images",
      model: null,
      usage: expect.objectContaining({
        input_uncached_tokens: 29,
        output_tokens: 272,
        output_image_tokens: 272,
      }),
      usage_raw: { estimated: true, images: 1 },
      estimated: true,
    });
    expect(imageOutputTokens("medium", "1536x1024")).toBe(1568);
    // Not in the table: the most its quality (else high) takes.
    expect(imageOutputTokens("auto", "auto")).toBe(6240);
    expect(imageOutputTokens("low", "2048x2048")).toBe(408);
    const rec = buildCallRecord(
      toolModelCallInput(
        { event_id: "01900000-0000-7000-8000-0000000000b1", ts_start: AT, provider: "openai", stream: false },
        u.tool_model_call!,
        null,
        "01900000-0000-8000-8000-0000000000b2",
      ),
      { workspaceId: "default", engine },
    );
    // 29 × $5 + 272 × $40 per million on gpt-image-1, flagged as an estimate.
    expect(rec.ok && rec.record).toMatchObject({
      cost_source: "estimated",
      cost_nanousd: 11_025_000n,
      priced: true,
    });
  });

  it("a stream cut before response.completed: the image it showed made is estimated, not left out", () => {
    const sse = text("responses.stream.image-tool.gpt-5-nano.tool-usage.sse");
    const read = (upTo: string) => {
      const x = createSseUsageExtractor("openai.responses");
      x.push(sse.slice(0, sse.indexOf(upTo)));
      const partial = x.result();
      expect(partial).toBeNull(); // the usage comes in response.completed only
      return estimateCutShortUsage(partial, {
        api: "openai.responses",
        model: "gpt-5-nano",
        requestBytes: 400,
        events: 2,
        shown: x.shown(),
      });
    };
    // Cut after the image's output_item.done: as the reply without tool_usage estimates it.
    const whole = extractFromResponse("openai.responses", body("responses.image-tool.gpt-5-nano.json"));
    const cut = read("event: response.completed");
    expect(cut.tool_model_call).toEqual(whole.tool_model_call);
    expect(cut.usage).toMatchObject({ input_uncached_tokens: 100, output_tokens: 2 });
    // Cut before it: no image shown made, none recorded.
    expect(read("event: response.output_item.done").tool_model_call).toBeUndefined();
    // An image item still under way (no result, not completed) is not one made.
    const x = createSseUsageExtractor("openai.responses");
    x.push(
      `data: ${JSON.stringify({
        type: "response.output_item.done",
        item: { type: "image_generation_call", status: "generating", quality: "high" },
      })}\n\n`,
    );
    const shown = x.shown();
    expect(shown.images).toHaveLength(1);
    const est = estimateCutShortUsage(null, {
      api: "openai.responses",
      model: null,
      requestBytes: 4,
      events: 1,
      shown,
    });
    expect(est.tool_model_call).toBeUndefined();
  });

  it("tool usage that does not read is a call whose cost is unknown; the response's own usage still reads", () => {
    const odd = body("responses.image-tool.gpt-5-nano.tool-usage.json");
    const imageGen = { input_tokens: "25", output_tokens: 272 };
    odd.tool_usage = { image_gen: imageGen };
    const u = extractFromResponse("openai.responses", odd);
    expect(u.usage.output_tokens).toBe(1970);
    expect(u.tool_model_call).toEqual({
      api: "openai.images",
      model: null,
      usage: null,
      usage_raw: imageGen,
    });
  });

  it("its record: gpt-image-1 by default, at its rates; the response's time, request and attribution", () => {
    const u = extractFromResponse(
      "openai.responses",
      body("responses.image-tool.gpt-5-nano.tool-usage.json"),
    );
    const main = buildCallRecord(
      {
        event_id: "01900000-0000-7000-8000-0000000000a1",
        ts_start: AT,
        ts_end: AT + 9_000,
        provider: "openai",
        api: "openai.responses",
        model: "gpt-5-nano",
        span_id: "s1",
        trace_id: "t1",
        request_id: "req-1",
        customer_id: "acme",
        tags: ["x"],
        ...u.usage,
      },
      { workspaceId: "default", engine },
    );
    if (!main.ok) throw new Error(JSON.stringify(main.errors));
    const input = toolModelCallInput(
      main.record,
      u.tool_model_call!,
      null,
      "01900000-0000-8000-8000-0000000000a2",
    );
    const tool = buildCallRecord(input, { workspaceId: "default", engine });
    if (!tool.ok) throw new Error(JSON.stringify(tool.errors));
    expect(tool.record).toMatchObject({
      kind: "llm",
      api: "openai.images",
      model: "gpt-image-1",
      model_requested: null,
      status: "ok",
      ts_start: AT,
      ts_end: AT + 9_000,
      request_id: "req-1",
      trace_id: "t1",
      parent_span_id: "s1",
      customer_id: "acme",
      tags: ["x"],
      output_image_tokens: 272,
      // 25 × $5 + 272 × $40 per million (gpt-image-1 prices its image output at its output rate).
      cost_nanousd: 11_005_000n,
      priced: true,
    });
    // The model the request's tool named, where the reply does not.
    const mini = buildCallRecord(
      toolModelCallInput(
        main.record,
        u.tool_model_call!,
        "gpt-image-1-mini",
        "01900000-0000-8000-8000-0000000000a3",
      ),
      {
        workspaceId: "default",
        engine,
      },
    );
    // 25 × $2 + 272 × $8 per million.
    expect(mini.ok && mini.record).toMatchObject({
      model: "gpt-image-1-mini",
      model_requested: "gpt-image-1-mini",
      cost_nanousd: 2_226_000n,
    });
  });

  it("a budget holds one image of the tool's size (more where max_tool_calls lets it), its prompt and input images", () => {
    const request = {
      model: "gpt-5-nano",
      input: [
        {
          role: "user",
          content: [
            { type: "input_text", text: "a cat" },
            { type: "input_image", image_url: "data:image/png;base64,AAAA" },
          ],
        },
      ],
      tools: [{ type: "image_generation", size: "1024x1024", partial_images: 2 }],
    };
    const wc = imageToolWorstCase(request)!;
    // 4,160 image tokens, 2 partial images at 100, 1,024 text; a 4,096-token prompt; one input image at 8,000.
    expect(wc.usage).toMatchObject({
      input_uncached_tokens: 4_096,
      image_tokens: 8_000,
      output_tokens: 5_384,
    });
    // gpt-image-1: 4,096 × $5 + 8,000 × $10 + 5,384 × $40 per million = $0.31584.
    expect(worstCaseCost(engine, "openai", "gpt-image-1", wc.usage, AT)).toEqual({
      priced: true,
      total_nanousd: 315_840_000n,
    });
    expect(imageToolWorstCase({ ...request, max_tool_calls: 3 })!.usage.output_tokens).toBe(3 * 5_384);
    expect(imageToolWorstCase({ model: "gpt-5-nano", tools: [{ type: "web_search" }] })).toBeNull();
  });
});
