// Review repro (85266eb): a background response's image tool record, recorded by a poll, names the model
// the submission's tool asked for (model_requested), as the record of a call answered at once does.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { gatewayRecords, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 0 });
  gw = await startTestGateway(mock.url);
});

afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

const ask = (tool: Record<string, unknown> = {}) => ({
  model: "gpt-5-nano",
  input: "Draw a cat",
  tools: [{ type: "image_generation" as const, ...tool }],
});
const client = (base: typeof gw, headers: Record<string, string>) =>
  new OpenAI({ apiKey: "sk-test-123", baseURL: `${base.url}/v1`, maxRetries: 0, defaultHeaders: headers });

describe("review: a background response's image tool record names the model its request asked for", () => {
  it("polled to its end: model_requested is the request's tool model, as for a call answered at once", async () => {
    const oa = client(gw, { "x-mock-case": "rv-img-bg-mini" });
    const direct = await oa.responses.create(ask({ model: "gpt-image-1-mini" })).withResponse();
    const all0 = await gatewayRecords(gw.runtime);
    const directMain = all0.find((r) => r.event_id === direct.response.headers.get("x-tollgate-event-id"))!;
    const directTool = all0.find((r) => r.request_id === directMain.request_id && r.api === "openai.images");
    expect(directTool).toMatchObject({ model: "gpt-image-1-mini", model_requested: "gpt-image-1-mini" });

    const submitted = await oa.responses.create({ ...ask({ model: "gpt-image-1-mini" }), background: true });
    for (let i = 0; i < 2; i++) await oa.responses.retrieve(submitted.id);
    const tool = await vi.waitFor(
      async () => {
        const t = (await gatewayRecords(gw.runtime)).find(
          (r) => r.request_id === submitted.id && r.api === "openai.images",
        );
        expect(t).toBeDefined();
        return t!;
      },
      { timeout: 5_000, interval: 20 },
    );
    expect(tool).toMatchObject({ model: "gpt-image-1-mini", model_requested: "gpt-image-1-mini" });
  });
});
