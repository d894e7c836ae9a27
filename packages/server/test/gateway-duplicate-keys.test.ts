// A JSON request body may repeat a member: `{"model":"gpt-4.1-nano",…,"model":"gpt-4o"}`. OpenAI's API reads
// the last copy, as JSON.parse does; the gateway must price, hold, record and stream the call by that copy
// too, or a budget would hold a cheap model's worst case for a dear model's call. Plain HTTP through the
// gateway against the local mock upstream, which reads the bytes it gets with JSON.parse as OpenAI would.
import { describe, expect, it } from "vitest";
import { adminRequest, type Json, rawRequest, recordByEventId, testCases } from "./helpers.js";
import type { MockUpstream } from "./mock-upstream.js";
import { type OpenAIThroughGateway, openaiThroughGateway } from "./openai-gateway.js";

let mock: MockUpstream;
let gw: OpenAIThroughGateway["gw"];
openaiThroughGateway((s) => ({ mock, gw } = s));

const { newCase, upstreamOf } = testCases("dup", () => mock.requests);
const MESSAGES = JSON.stringify([{ role: "user", content: "hi" }]);

/** A chat call of `body` (JSON text, as the client wrote it) through the gateway, in test case `id`. */
const post = (id: string, body: string, headers: Record<string, string> = {}) =>
  rawRequest(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: "Bearer sk-test",
      "x-test-case": id,
      ...headers,
    },
    body,
  });

describe("gateway: a request that repeats a member is read by its last copy, as the upstream reads it", () => {
  it("a repeated model: held, priced and recorded as the last, the model the upstream is asked for", async () => {
    // Room for gpt-4.1-nano's worst case with max_tokens 1000 ($0.0004 out), not gpt-4o's ($0.01).
    await adminRequest(gw, "POST", "/api/budgets", {
      id: "dup-model",
      scope: { feature: "dup-model" },
      window: "day",
      limit_usd: "0.005",
    });
    const feature = { "x-tollgate-feature": "dup-model" };
    const body = (first: string, last: string) =>
      `{"model":"${first}","max_tokens":1000,"messages":${MESSAGES},"model":"${last}"}`;

    const cheapLast = newCase();
    const ok = await post(cheapLast, body("gpt-4o", "gpt-4.1-nano"), feature);
    expect(ok.status).toBe(200);
    expect(upstreamOf(cheapLast)[0]!.body.model).toBe("gpt-4.1-nano");
    const rec = await recordByEventId(gw.runtime, ok.headers["x-tollgate-event-id"] as string);
    expect(rec).toMatchObject({
      model_requested: "gpt-4.1-nano",
      model: expect.stringMatching(/^gpt-4\.1-nano/), // as the reply names it: gpt-4.1-nano-2025-04-14
      status: "ok",
    });

    // The dear model last: refused on gpt-4o's worst case, the same as a call of as many bytes naming it once.
    const dearLast = newCase();
    const refused = await post(dearLast, body("gpt-4.1-nano", "gpt-4o"), feature);
    expect(refused.status).toBe(429);
    expect(upstreamOf(dearLast)).toEqual([]);
    const once = await post(newCase(), body("gpt-4.1-nano", "gpt-4o").replace('"model"', '"mode_"'), feature);
    expect(once.status).toBe(429);
    const heldFor = (res: { body: string }) => (JSON.parse(res.body) as Json).error.budget.requested_usd;
    expect(heldFor(refused)).toBe(heldFor(once));
  });

  it("a repeated stream: the last says whether it streams, and usage is asked for in the bytes sent", async () => {
    const streamed = newCase();
    const res = await post(
      streamed,
      `{"model":"gpt-4o-mini","stream":false,"messages":${MESSAGES},"stream":true}`,
    );
    expect(res.headers["content-type"]).toContain("text/event-stream");
    expect(res.body).not.toContain('"usage":{'); // the client asked for none
    const up = upstreamOf(streamed)[0]!;
    expect(up.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    const rec = await recordByEventId(gw.runtime, res.headers["x-tollgate-event-id"] as string);
    expect(rec.stream).toBe(true);
    expect(rec.output_tokens).toBeGreaterThan(0); // the usage the gateway asked for

    const whole = newCase();
    const plain = await post(
      whole,
      `{"model":"gpt-4o-mini","stream":true,"messages":${MESSAGES},"stream":false}`,
    );
    expect(plain.headers["content-type"]).toContain("application/json");
    expect(upstreamOf(whole)[0]!.rawBody).not.toContain("stream_options"); // nothing added to a whole reply
  });

  it("a repeated stream_options whose last copy leaves usage out: every copy asks for it", async () => {
    const id = newCase();
    const res = await post(
      id,
      `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":${MESSAGES},"stream_options":null}`,
    );
    expect(res.status).toBe(200);
    expect(res.body).not.toContain('"usage":{'); // the client's last copy asked for none
    expect(upstreamOf(id)[0]!.rawBody).toBe(
      `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":${MESSAGES},"stream_options":{"include_usage":true}}`,
    );
    const rec = await recordByEventId(gw.runtime, res.headers["x-tollgate-event-id"] as string);
    expect(rec.output_tokens).toBeGreaterThan(0);
  });

  it("a large request (its media skimmed before it is read) repeating model: read by the last copy too", async () => {
    const image = `data:image/png;base64,${"iVBORw0KGgo".repeat(10_000)}`; // past the 64 KiB a body is skimmed over
    const content = [{ type: "image_url", image_url: { url: image } }];
    const id = newCase();
    const res = await post(
      id,
      `{"model":"gpt-4o","messages":[{"role":"user","content":${JSON.stringify(content)}}],"model":"gpt-4.1-nano"}`,
    );
    expect(res.status).toBe(200);
    expect(upstreamOf(id)[0]!.body.model).toBe("gpt-4.1-nano");
    const rec = await recordByEventId(gw.runtime, res.headers["x-tollgate-event-id"] as string);
    expect(rec.model_requested).toBe("gpt-4.1-nano");
  });
});
