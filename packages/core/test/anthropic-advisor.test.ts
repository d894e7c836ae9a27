// Anthropic's advisor tool (`advisor_20260301`): the executor consults a stronger advisor model inside one
// Messages call. Each consultation is an `advisor_message` entry of `usage.iterations`, billed at the
// advisor model's rates and left out of the top-level fields (the executor's). The reply below is built in
// the shape of the SDK's types (`BetaAdvisorMessageIterationUsage`); no captured one is in the fixtures.
import { describe, expect, it } from "vitest";
import {
  advisorToolModel,
  advisorWorstCase,
  createStreamExtractor,
  estimateCutShortUsage,
  extractFromEvents,
  extractFromResponse,
  PricingEngine,
  requestedToolModel,
  toolCallWorstCase,
  toolModelCallInput,
  worstCaseUsage,
} from "../src/index.js";

const executor = {
  input_tokens: 3000,
  output_tokens: 800,
  cache_read_input_tokens: 0,
  cache_creation_input_tokens: 0,
};
const advice = (input: number, output: number) => ({
  type: "advisor_message",
  model: "claude-opus-4-6",
  input_tokens: input,
  output_tokens: output,
  cache_read_input_tokens: 1000,
  cache_creation_input_tokens: 0,
  cache_creation: null,
});
const usage = {
  ...executor,
  iterations: [{ type: "message", ...executor }, advice(2500, 600), advice(4000, 900)],
};
const reply = {
  id: "msg_adv",
  type: "message",
  role: "assistant",
  model: "claude-sonnet-4-6",
  content: [{ type: "text", text: "Done." }],
  stop_reason: "end_turn",
  usage,
};

describe("Anthropic's advisor tool", () => {
  it("its consultations are one call of the advisor's model, apart from the executor's usage", () => {
    const u = extractFromResponse("anthropic.messages", reply);
    expect(u.usage).toMatchObject({ input_uncached_tokens: 3000, output_tokens: 800, cache_read_tokens: 0 });
    expect(u.tool_model_call).toEqual({
      api: "anthropic.messages",
      model: "claude-opus-4-6",
      usage: expect.objectContaining({
        input_uncached_tokens: 6500,
        cache_read_tokens: 2000,
        output_tokens: 1500,
      }),
      usage_raw: [advice(2500, 600), advice(4000, 900)],
    });
    // Streamed, the final message_delta carries the iterations.
    const streamed = extractFromEvents("anthropic.messages", [
      { type: "message_start", message: { ...reply, usage: { input_tokens: 3000, output_tokens: 1 } } },
      { type: "message_delta", delta: { stop_reason: "end_turn" }, usage },
    ]);
    expect(streamed!.tool_model_call).toEqual(u.tool_model_call);
    // No advisor entries, no call.
    const plain = extractFromResponse("anthropic.messages", { ...reply, usage: executor });
    expect(plain.tool_model_call).toBeUndefined();
  });

  it("is recorded and priced as a call of its own, at the advisor's rates, within the executor's call", () => {
    const u = extractFromResponse("anthropic.messages", reply);
    const parent = { event_id: "0190a0b0-0000-7000-8000-000000000001", span_id: "s1", request_id: "msg_adv" };
    const input = toolModelCallInput(
      parent,
      u.tool_model_call!,
      null,
      "0190a0b0-0000-7000-8000-000000000002",
    );
    expect(input).toMatchObject({
      api: "anthropic.messages",
      model: "claude-opus-4-6",
      parent_event_id: parent.event_id,
      parent_span_id: "s1",
      status: "ok",
      input_uncached_tokens: 6500,
    });
    // claude-opus-4-6: $5/M in, $0.50/M cache reads, $25/M out.
    const price = new PricingEngine().price({
      provider: "anthropic",
      model: "claude-opus-4-6",
      usage: u.tool_model_call!.usage!,
      at: Date.parse("2026-09-01T12:00:00Z"),
    });
    expect(price.cost.total_nanousd).toBe(6500n * 5_000n + 2000n * 500n + 1500n * 25_000n);
  });

  it("an entry that does not read is a call whose cost is unknown, not none; the executor's still reads", () => {
    const bad = { ...usage, iterations: [advice(10, 10), { ...advice(1, 1), output_tokens: -4 }] };
    const u = extractFromResponse("anthropic.messages", { ...reply, usage: bad });
    expect(u.usage.input_uncached_tokens).toBe(3000);
    expect(u.tool_model_call).toMatchObject({
      api: "anthropic.messages",
      model: "claude-opus-4-6",
      usage: null,
    });
  });

  it("the request's advisor tool names the model asked for", () => {
    const body = {
      model: "claude-sonnet-4-6",
      tools: [{ type: "advisor_20260301", name: "advisor", model: "claude-opus-4-6" }],
    };
    expect(advisorToolModel(body)).toBe("claude-opus-4-6");
    expect(requestedToolModel("anthropic.messages", body)).toBe("claude-opus-4-6");
    expect(advisorToolModel({ tools: [{ type: "web_search_20250305" }] })).toBeNull();
  });

  it("a budget holds its consultations beside the executor's: max_uses of them (else one), each reading the transcript", () => {
    const body = {
      model: "claude-sonnet-4-6",
      max_tokens: 4000,
      messages: [{ role: "user", content: "Plan the migration" }],
      tools: [
        {
          type: "advisor_20260301",
          name: "advisor",
          model: "claude-opus-4-6",
          max_uses: 3,
          max_tokens: 1500,
        },
      ],
    };
    const executor = worstCaseUsage(
      "anthropic.messages",
      body,
      { byteLength: JSON.stringify(body).length },
      null,
    );
    const transcript = executor.usage.input_uncached_tokens + executor.usage.output_tokens; // 4,000 out at most
    expect(executor.usage.output_tokens).toBe(4000);
    expect(advisorWorstCase(body, executor)!.usage).toMatchObject({
      input_uncached_tokens: 3 * transcript,
      output_tokens: 3 * 1500,
    });
    const unbounded = {
      ...body,
      tools: [{ type: "advisor_20260301", name: "advisor", model: "claude-opus-4-6" }],
    };
    expect(advisorWorstCase(unbounded, executor)!.usage).toMatchObject({
      input_uncached_tokens: transcript,
      output_tokens: 2048,
    });
    expect(toolCallWorstCase("anthropic.messages", body, executor)?.model).toBe("claude-opus-4-6");
    expect(toolCallWorstCase("anthropic.messages", { ...body, tools: [] }, executor)).toBeNull();
  });

  it("a stream cut before its final usage: each consultation that came back is estimated, never left out", () => {
    const request = {
      model: "claude-sonnet-4-6",
      tools: [{ type: "advisor_20260301", name: "advisor", model: "claude-opus-4-6" }],
    };
    const events = [
      { type: "message_start", message: { ...reply, usage: { input_tokens: 3000, output_tokens: 1 } } },
      {
        type: "content_block_start",
        index: 0,
        content_block: { type: "server_tool_use", id: "srvtoolu_1", name: "advisor", input: {} },
      },
      { type: "content_block_stop", index: 0 },
      {
        type: "content_block_start",
        index: 1,
        content_block: {
          type: "advisor_tool_result",
          tool_use_id: "srvtoolu_1",
          content: { type: "advisor_result", text: "Plan: …" },
        },
      },
      { type: "content_block_stop", index: 1 },
      { type: "content_block_start", index: 2, content_block: { type: "text", text: "" } },
    ];
    const extractor = createStreamExtractor("anthropic.messages");
    for (const e of events) extractor.push(e);
    expect(extractor.shown().advisorCalls).toBe(1);
    const cut = estimateCutShortUsage(extractor.result(), {
      api: "anthropic.messages",
      model: "claude-sonnet-4-6",
      requestBytes: 500,
      events: events.length,
      shown: extractor.shown(),
      request,
    });
    // The transcript so far (3,000 in, 6 events out) read once, and a typical consultation's 1,600 tokens.
    expect(cut.tool_model_call).toEqual({
      api: "anthropic.messages",
      model: "claude-opus-4-6",
      usage: expect.objectContaining({ input_uncached_tokens: 3006, output_tokens: 1600 }),
      usage_raw: { estimated: true, consultations: 1 },
      estimated: true,
    });
    // Asked for, not yet back: nothing was billed for it.
    const asked = createStreamExtractor("anthropic.messages");
    for (const e of events.slice(0, 3)) asked.push(e);
    const early = {
      api: "anthropic.messages" as const,
      model: null,
      requestBytes: 500,
      events: 3,
      shown: asked.shown(),
      request,
    };
    expect(estimateCutShortUsage(asked.result(), early).tool_model_call).toBeUndefined();
  });
});
