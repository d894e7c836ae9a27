// The Responses API's image generation tool through the gateway, driven by the official `openai` SDK against
// the local mock upstream (packages/core/test/fixtures/openai-images: a real reply that made an image, with
// the tool's usage): the image is a call of its own image model, recorded beside the response, in the reply's
// cost, counted against budgets and agent runs, and held before the call goes out.
import type OpenAI from "openai";
import { describe, expect, it, vi } from "vitest";
import { adminRequest, collect, gatewayRecords, rawRequest, recordByEventId, testCases } from "./helpers.js";
import { IMAGE_FX, imageFixture, type MockUpstream } from "./mock-upstream.js";
import { type OpenAIThroughGateway, openaiThroughGateway } from "./openai-gateway.js";

let mock: MockUpstream;
let gw: OpenAIThroughGateway["gw"];
let openai: OpenAI;
openaiThroughGateway((s) => ({ mock, gw, openai } = s));

const { newCase, tagged, upstreamOf } = testCases("imgtool", () => mock.requests);
const ask = (tool: Record<string, unknown> = {}) => ({
  model: "gpt-5-nano",
  input: "Draw a cat",
  tools: [{ type: "image_generation" as const, ...tool }],
});
/** gpt-5-nano: 3,151 in × $0.05 + 1,970 out × $0.40 per million. */
const RESPONSE_COST = 945_550n;
/** gpt-image-1: 25 text in × $5 + 272 image tokens out × $40 per million. */
const IMAGE_COST = 11_005_000n;

/** The records of one call (its request id), the response's and its tool's. */
async function recordsOf(eventId: string | null) {
  const main = await recordByEventId(gw.runtime, eventId);
  const all = await gatewayRecords(gw.runtime);
  const tool = all.filter((r) => r.request_id === main.request_id && r.event_id !== main.event_id);
  return { main, tool };
}

describe("gateway: the Responses image generation tool", () => {
  it("the image is a call of gpt-image-1 of its own, beside the response; the reply's cost is both", async () => {
    const id = newCase();
    const { data, response } = await openai.responses.create(ask(), tagged(id)).withResponse();
    const sent = JSON.parse(imageFixture(IMAGE_FX.tool));
    expect(data.output).toEqual(sent.output);
    expect(upstreamOf(id)).toHaveLength(1);
    expect(response.headers.get("x-tollgate-cost-usd")).toBe("0.01195055");
    const { main, tool } = await recordsOf(response.headers.get("x-tollgate-event-id"));
    expect(main).toMatchObject({
      api: "openai.responses",
      model: "gpt-5-nano-2025-08-07",
      cost_nanousd: RESPONSE_COST,
    });
    expect(tool).toHaveLength(1);
    expect(tool[0]).toMatchObject({
      kind: "llm",
      api: "openai.images",
      model: "gpt-image-1",
      model_requested: null,
      status: "ok",
      input_uncached_tokens: 25,
      output_tokens: 272,
      output_image_tokens: 272,
      cost_nanousd: IMAGE_COST,
      ts_start: main.ts_start,
      attempt: main.attempt,
    });
  });

  it("a tool that names its model is priced at that model's rates; streamed, the cost trailer is both", async () => {
    const { response } = await openai.responses.create(ask({ model: "gpt-image-1-mini" })).withResponse();
    const { tool } = await recordsOf(response.headers.get("x-tollgate-event-id"));
    // 25 × $2 + 272 × $8 per million.
    expect(tool[0]).toMatchObject({
      model: "gpt-image-1-mini",
      model_requested: "gpt-image-1-mini",
      cost_nanousd: 2_226_000n,
    });

    const res = await rawRequest(`${gw.url}/v1/responses`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-test-123" },
      body: JSON.stringify({ ...ask(), stream: true }),
    });
    expect(res.body).toBe(
      imageFixture(IMAGE_FX.toolStream).replace(
        /"tools":\[[^\]]*\]/g,
        `"tools":[{"type":"image_generation"}]`,
      ),
    );
    expect(res.trailers["x-tollgate-cost-usd"]).toBe("0.01195055");
    const streamed = await recordsOf(String(res.headers["x-tollgate-event-id"]));
    expect(streamed.main.stream).toBe(true);
    expect(streamed.tool[0]).toMatchObject({ stream: true, model: "gpt-image-1", cost_nanousd: IMAGE_COST });
    const events = await collect(await openai.responses.create({ ...ask(), stream: true }));
    expect(events.at(-1)?.type).toBe("response.completed");
  });

  it("a reply without the tool's usage: its image is estimated from what the reply shows, never left out", async () => {
    const { response } = await openai.responses.create(ask({ partial_images: 0 })).withResponse();
    const { tool } = await recordsOf(response.headers.get("x-tollgate-event-id"));
    // A low-quality 1024² image (272 tokens) and its revised prompt (29 tokens) on gpt-image-1.
    expect(tool[0]).toMatchObject({
      api: "openai.images",
      model: "gpt-image-1",
      cost_source: "estimated",
      output_image_tokens: 272,
      cost_nanousd: 11_025_000n,
      usage_raw: { estimated: true, images: 1 },
    });
    expect(response.headers.get("x-tollgate-cost-usd")).toBe("0.01197055");
  });

  it("an image of megabytes in the reply (read without it): reported or estimated, the same cost", async () => {
    const big = tagged(newCase(), { "x-mock-image-bytes": String(8 * 1024 * 1024) });
    for (const [tool, cost, reply] of [
      [{}, IMAGE_COST, "0.01195055"],
      [{ partial_images: 0 }, 11_025_000n, "0.01197055"],
    ] as const) {
      const { data, response } = await openai.responses.create(ask(tool), big).withResponse();
      const image = data.output.find((o) => o.type === "image_generation_call");
      expect(image?.result).toHaveLength(8 * 1024 * 1024);
      expect(response.headers.get("x-tollgate-cost-usd")).toBe(reply);
      const { tool: rec } = await recordsOf(response.headers.get("x-tollgate-event-id"));
      expect(rec[0]).toMatchObject({ api: "openai.images", model: "gpt-image-1", cost_nanousd: cost });
    }
  });

  it("a stream the client leaves after the image came, before response.completed: the image is still recorded", async () => {
    const user = `imgtool-cut-${newCase()}`;
    const stream = await openai.responses.create(
      { ...ask({ model: "gpt-image-1-mini" }), stream: true },
      tagged(newCase(), { "x-mock-chunk-delay-ms": "300", "x-tollgate-user-id": user }),
    );
    for await (const ev of stream) if (ev.type === "response.output_item.done") break; // aborts the request
    const records = async () => (await gatewayRecords(gw.runtime)).filter((r) => r.user_id === user);
    await expect.poll(async () => (await records()).length).toBe(2);
    const main = (await records()).find((r) => r.api === "openai.responses");
    const image = (await records()).find((r) => r.api === "openai.images");
    expect(main).toMatchObject({ cost_source: "estimated", error_type: "client_disconnected" });
    // The real reply's image (low quality, 1024², a 113-character revised prompt) at gpt-image-1-mini's rates:
    // 29 × $2 + 272 × $8 per million.
    expect(image).toMatchObject({
      model: "gpt-image-1-mini",
      cost_source: "estimated",
      input_uncached_tokens: 29,
      output_image_tokens: 272,
      cost_nanousd: 2_234_000n,
      request_id: main!.request_id,
      parent_event_id: main!.event_id,
    });
  });

  it("budgets count the image, and hold its worst case before the call goes out", async () => {
    const user = `imgtool-user-${newCase()}`;
    await adminRequest(gw, "POST", "/api/budgets", {
      id: `imgtool-${user}`,
      scope: { user_id: user },
      window: "day",
      limit_usd: "5",
    });
    const id = newCase();
    await openai.responses.create(ask(), tagged(id, { "x-tollgate-user-id": user }));
    const spend = async () => (await adminRequest(gw, "GET", `/api/budgets/imgtool-${user}`)).json;
    await expect.poll(spend).toMatchObject({
      spend_nanousd: String(RESPONSE_COST + IMAGE_COST),
      reserved_nanousd: "0",
    });

    // Held: an image of 1536×1024 at high quality (gpt-image-1: 7,264 out × $40 + a 4,096-token prompt × $5
    // per million, $0.311), beside the response's own worst case; $0.05 cannot take it.
    const tight = `imgtool-tight-${newCase()}`;
    await adminRequest(gw, "POST", "/api/budgets", {
      id: tight,
      scope: { user_id: tight },
      window: "day",
      limit_usd: "0.05",
    });
    const refused = newCase();
    const call = openai.responses.create(
      { ...ask(), max_output_tokens: 1000 },
      tagged(refused, { "x-tollgate-user-id": tight }),
    );
    await expect(call).rejects.toMatchObject({ status: 429, code: "budget_exceeded" });
    expect(upstreamOf(refused)).toHaveLength(0);
    // Without the tool, the same call fits.
    const plain = newCase();
    const { tools: _, ...noTool } = ask();
    await openai.responses.create(
      { ...noTool, max_output_tokens: 1000 },
      tagged(plain, { "x-tollgate-user-id": tight }),
    );
    expect(upstreamOf(plain)).toHaveLength(1);
  });

  it("a background response found finished by a poll: its image is recorded once, however often it is polled", async () => {
    const opts = { headers: { "x-mock-case": `imgtool-bg-${newCase()}` } };
    const submitted = await openai.responses.create({ ...ask(), background: true }, opts);
    expect(submitted.status).toBe("queued");
    expect((await openai.responses.retrieve(submitted.id, undefined, opts)).status).toBe("in_progress");
    for (let i = 0; i < 2; i++)
      expect((await openai.responses.retrieve(submitted.id, undefined, opts)).status).toBe("completed");
    await expect
      .poll(async () =>
        (await gatewayRecords(gw.runtime))
          .filter((r) => r.request_id === submitted.id && r.kind === "llm")
          .map((r) => [r.api, r.cost_nanousd]),
      )
      .toEqual(
        expect.arrayContaining([
          ["openai.responses", RESPONSE_COST],
          ["openai.images", IMAGE_COST],
        ]),
      );
    const images = (await gatewayRecords(gw.runtime)).filter(
      (r) => r.request_id === submitted.id && r.api === "openai.images",
    );
    expect(images).toHaveLength(1);
  });

  it("a background response polled to its end: its image is of the model the submission's tool named", async () => {
    const opts = { headers: { "x-mock-case": `imgtool-bg-mini-${newCase()}` } };
    const submitted = await openai.responses.create(
      { ...ask({ model: "gpt-image-1-mini" }), background: true },
      opts,
    );
    for (let i = 0; i < 2; i++) await openai.responses.retrieve(submitted.id, undefined, opts);
    const image = async () =>
      (await gatewayRecords(gw.runtime)).find(
        (r) => r.request_id === submitted.id && r.api === "openai.images",
      );
    await expect
      .poll(image)
      .toMatchObject({ model: "gpt-image-1-mini", model_requested: "gpt-image-1-mini" });
  });

  it("an agent run counts the image's cost, not as another LLM call", async () => {
    const run = `imgtool-run-${newCase()}`;
    await openai.responses.create(ask(), tagged(newCase(), { "x-tollgate-agent-run-id": run }));
    const usage = async () => (await adminRequest(gw, "GET", `/api/runs/${run}`)).json.usage;
    await expect
      .poll(usage)
      .toMatchObject({ llm_calls: 1, cost_nanousd: String(RESPONSE_COST + IMAGE_COST) });
  });

  it("an agent run's reply waits until the image counts too, however slow the limit store (Redis, say)", async () => {
    const store = gw.runtime.guard.store;
    const charge = store.charge.bind(store);
    const slow = vi
      .spyOn(store, "charge")
      .mockImplementation(async (req) => new Promise((r) => setTimeout(r, 150)).then(() => charge(req)));
    try {
      // No poll: the run's next call, made the moment a reply ends, must see the image's cost against its ceiling.
      const usageOf = async (run: string) => (await adminRequest(gw, "GET", `/api/runs/${run}`)).json.usage;
      const both = { llm_calls: 1, cost_nanousd: String(RESPONSE_COST + IMAGE_COST) };
      const whole = `imgtool-slow-run-${newCase()}`;
      await openai.responses.create(ask(), tagged(newCase(), { "x-tollgate-agent-run-id": whole }));
      expect(await usageOf(whole)).toMatchObject(both);
      const streamed = `imgtool-slow-run-${newCase()}`;
      await collect(
        await openai.responses.create(
          { ...ask(), stream: true },
          tagged(newCase(), { "x-tollgate-agent-run-id": streamed }),
        ),
      );
      expect(await usageOf(streamed)).toMatchObject(both);
    } finally {
      slow.mockRestore();
    }
  });
});
