// A chat request carrying megabytes of base64 image through the gateway, driven by the official `openai` SDK:
// read without its media (the event loop is not held parsing it), sent upstream byte for byte, and held by a
// budget exactly as the request parsed whole is.
import { formatUsd, PricingEngine, worstCaseCost, worstCaseUsage } from "@tollgate/core";
import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { parseJsonObject } from "../src/gateway/request-body.js";
import { adminRequest, recordByEventId, testCases } from "./helpers.js";
import type { MockUpstream } from "./mock-upstream.js";
import { type OpenAIThroughGateway, openaiThroughGateway } from "./openai-gateway.js";

let mock: MockUpstream;
let gw: OpenAIThroughGateway["gw"];
let openai: OpenAI;
openaiThroughGateway((s) => ({ mock, gw, openai } = s));

const { newCase, tagged, upstreamOf } = testCases("large", () => mock.requests);
const image = `data:image/png;base64,${"iVBORw0KGgoAAAANSUhEUgAA".repeat(5_000_000 / 24)}`;
const params = {
  model: "gpt-4.1-nano",
  max_tokens: 300,
  messages: [
    {
      role: "user" as const,
      content: [
        { type: "text" as const, text: "What is in this image?" },
        { type: "image_url" as const, image_url: { url: image } },
      ],
    },
  ],
};

describe("gateway: a request of megabytes of image", () => {
  it("goes upstream byte for byte, is priced from its reply, and is held as if parsed whole", async () => {
    const raw = Buffer.from(JSON.stringify(params));
    // The hold of the request parsed whole: what a budget must come to, not a nano-USD less.
    const engine = new PricingEngine();
    const wc = worstCaseUsage("openai.chat", parseJsonObject(raw), raw, null);
    const hold = worstCaseCost(engine, "openai", "gpt-4.1-nano", wc.usage, Date.now());
    expect(hold.priced).toBe(true);
    expect(wc.usage.input_uncached_tokens).toBeLessThan(5_000); // the image is not text

    const user = `large-user-${newCase()}`;
    const cap = async (nanos: bigint) =>
      adminRequest(gw, "PUT", `/api/budgets/large-cap-${user}`, {
        id: `large-cap-${user}`,
        scope: { user_id: user },
        window: "day",
        limit_usd: formatUsd(nanos),
      });
    expect((await cap(hold.total_nanousd - 1n)).status).toBeLessThan(300);
    const id = newCase();
    const as = tagged(id, { "x-tollgate-user-id": user });
    await expect(openai.chat.completions.create(params, as)).rejects.toMatchObject({
      status: 429,
      code: "budget_exceeded",
    });
    expect(upstreamOf(id)).toHaveLength(0);
    expect((await cap(hold.total_nanousd)).status).toBeLessThan(300);
    const { data, response } = await openai.chat.completions.create(params, as).withResponse();
    expect(data.choices.length).toBeGreaterThan(0);
    const [sent] = upstreamOf(id);
    expect(sent!.bytes.equals(raw)).toBe(true);
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({ status: "ok", priced: true, user_id: user });
  });
});
