// OpenAI's Images API through the gateway, driven by the official `openai` SDK against the local mock upstream
// (published usage objects, packages/core/test/fixtures/openai-images): generations and edits (multipart,
// whose model and images are read from the form), whole and streamed, are priced from their usage, held
// against budgets by their worst case, and reach the SDK as the upstream sent them.
import { extractFromResponse, extractFromSse, formatUsd } from "@tollgate/core";
import type OpenAI from "openai";
import { toFile } from "openai";
import { describe, expect, it } from "vitest";
import {
  adminRequest,
  collect,
  expectExactUsageAndCost,
  gatewayRecords,
  recordByEventId,
  testCases,
} from "./helpers.js";
import { IMAGE_FX, imageFixture, type MockUpstream } from "./mock-upstream.js";
import { type OpenAIThroughGateway, openaiThroughGateway } from "./openai-gateway.js";

let mock: MockUpstream;
let gw: OpenAIThroughGateway["gw"];
let openai: OpenAI;
openaiThroughGateway((s) => ({ mock, gw, openai } = s));

const { newCase, tagged, upstreamOf } = testCases("img", () => mock.requests);
/** A PNG's first bytes and some that are not UTF-8: an upload must reach the upstream as sent. */
const PNG = Buffer.concat([
  Buffer.from("89504e470d0a1a0a", "hex"),
  Buffer.from([0xff, 0xfe, 0x00, 0x0d, 0x0a]),
]);

describe("gateway: OpenAI Images API", () => {
  it("a generation: the SDK gets the upstream's reply; the call is priced from its usage (gpt-image-1)", async () => {
    const id = newCase();
    const { data, response } = await openai.images
      .generate({ model: "gpt-image-1", prompt: "a red fox", size: "1024x1024" }, tagged(id))
      .withResponse();
    const body = JSON.parse(imageFixture(IMAGE_FX["gpt-image-1"]));
    expect(data).toEqual(body);
    expect(upstreamOf(id)).toHaveLength(1);
    // 10 text × $5 + 40 image × $10 + 50 image out × $40, per million.
    expect(response.headers.get("x-tollgate-cost-usd")).toBe("0.00245");
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({
      kind: "llm",
      api: "openai.images",
      model_requested: "gpt-image-1",
      model: "gpt-image-1",
      status: "ok",
      output_image_tokens: 50,
      cost_nanousd: 2_450_000n,
    });
    expectExactUsageAndCost(
      rec,
      { ...extractFromResponse("openai.images", body), model: "gpt-image-1" },
      "openai",
    );
  });

  it("a reply whose image is megabytes (read without it): the SDK gets every byte; the cost is the same", async () => {
    const id = newCase();
    const { data, response } = await openai.images
      .generate(
        { model: "gpt-image-1", prompt: "a red fox", size: "1024x1024" },
        tagged(id, { "x-mock-image-bytes": String(8 * 1024 * 1024) }),
      )
      .withResponse();
    const fx = JSON.parse(imageFixture(IMAGE_FX["gpt-image-1"]));
    expect(data.data![0]!.b64_json).toHaveLength(8 * 1024 * 1024);
    expect(data.data![0]!.b64_json!.slice(0, 24)).toBe("iVBORw0KGgoAAAANSUhEUgAA");
    expect({ ...data, data: fx.data }).toEqual(fx);
    expect(response.headers.get("x-tollgate-cost-usd")).toBe("0.00245");
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({ api: "openai.images", output_image_tokens: 50, cost_nanousd: 2_450_000n });
  });

  it("gpt-image-1.5: image output and text output each at its rate", async () => {
    const { response } = await openai.images
      .generate({ model: "gpt-image-1.5", prompt: "a red fox", quality: "low" })
      .withResponse();
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({ output_tokens: 481, output_image_tokens: 272, cost_nanousd: 11_034_000n });
    expect(response.headers.get("x-tollgate-cost-usd")).toBe(formatUsd(11_034_000n));
  });

  it("an edit (multipart): its images reach the upstream byte for byte; its model is read from the form", async () => {
    const id = newCase();
    const { response } = await openai.images
      .edit(
        {
          model: "gpt-image-1.5",
          image: [
            await toFile(PNG, "a.png", { type: "image/png" }),
            await toFile(PNG, "b.png", { type: "image/png" }),
          ],
          prompt: "put them side by side",
        },
        tagged(id),
      )
      .withResponse();
    const [up] = upstreamOf(id);
    expect(up!.headers["content-type"]).toMatch(/^multipart\/form-data; boundary=/);
    expect(up!.body).toMatchObject({ model: "gpt-image-1.5", prompt: "put them side by side" });
    expect(up!.bytes.indexOf(PNG)).toBeGreaterThan(0);
    expect(up!.bytes.lastIndexOf(PNG)).toBeGreaterThan(up!.bytes.indexOf(PNG));
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({
      api: "openai.images",
      model_requested: "gpt-image-1.5",
      cost_nanousd: 11_034_000n,
    });
  });

  it("a request that names no model is priced and held as the model OpenAI runs it on (an edit: gpt-image-1.5)", async () => {
    const id = newCase();
    const { response } = await openai.images
      .edit({ image: await toFile(PNG, "a.png", { type: "image/png" }), prompt: "a hat" }, tagged(id))
      .withResponse();
    expect(upstreamOf(id)[0]!.body.model).toBeUndefined(); // nothing added to what the client sent
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({ model_requested: null, model: "gpt-image-1.5", priced: true });
    // A budget a default-model edit's worst case passes refuses it, as it would a named one.
    const user = `img-user-${newCase()}`;
    await adminRequest(gw, "POST", "/api/budgets", {
      id: `img-cap-${user}`,
      scope: { user_id: user },
      window: "day",
      limit_usd: "0.05",
    });
    const refused = openai.images.edit(
      { image: await toFile(PNG, "a.png", { type: "image/png" }), prompt: "a hat" },
      tagged(id, { "x-tollgate-user-id": user }),
    );
    await expect(refused).rejects.toMatchObject({ status: 429, code: "budget_exceeded" });
    expect(upstreamOf(id)).toHaveLength(1);
  });

  it("a streamed generation: every event reaches the SDK; the completed event's usage is recorded", async () => {
    const id = newCase();
    const stream = await openai.images.generate(
      { model: "gpt-image-1", prompt: "a red fox", stream: true, partial_images: 1 },
      tagged(id),
    );
    const events = await collect(stream);
    expect(events.map((e) => e.type)).toEqual([
      "image_generation.partial_image",
      "image_generation.completed",
    ]);
    const recs = (await gatewayRecords(gw.runtime)).filter((r) => r.api === "openai.images" && r.stream);
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({ status: "ok", cost_source: "computed", cost_nanousd: 2_450_000n });
    const sse = imageFixture(IMAGE_FX.stream);
    expectExactUsageAndCost(
      recs[0]!,
      { ...extractFromSse("openai.images", sse)!, model: "gpt-image-1" },
      "openai",
    );
  });

  it("a stream cut off before its completed event is recorded estimated at the request's worst case", async () => {
    const id = newCase();
    const stream = await openai.images.generate(
      { model: "gpt-image-1", prompt: "a red fox", stream: true, partial_images: 1 },
      tagged(id, { "x-mock-scenario": "reset-mid-stream" }),
    );
    await expect(collect(stream)).rejects.toThrow();
    const recs = (await gatewayRecords(gw.runtime)).filter(
      (r) => r.api === "openai.images" && r.cost_source === "estimated",
    );
    expect(recs).toHaveLength(1);
    // 1536×1024 at high quality (6,240) + a partial image (100) + 1,024 text; 9 prompt characters × 3 bytes.
    expect(recs[0]).toMatchObject({ output_tokens: 7_364, input_uncached_tokens: 27, priced: true });
  });

  it("a budget is held the request's worst case: an edit that could pass it is refused before the upstream", async () => {
    const user = `img-user-${newCase()}`;
    const created = await adminRequest(gw, "POST", "/api/budgets", {
      id: `img-cap-${user}`,
      scope: { user_id: user },
      window: "day",
      limit_usd: "0.30",
    });
    expect(created.status).toBe(201);
    const id = newCase();
    const edit = (size: "1024x1024" | "1536x1024", images: number) =>
      openai.images.edit(
        {
          model: "gpt-image-1.5",
          image: Array.from({ length: images }, (_, i) => new File([PNG], `${i}.png`, { type: "image/png" })),
          prompt: "a hat",
          size,
        },
        tagged(id, { "x-tollgate-user-id": user }),
      );
    // 2 × 8,000 input image tokens × $8 + (6,240 + 1,024) × $32 per million: $0.361 held, over $0.30.
    await expect(edit("1536x1024", 2)).rejects.toMatchObject({ status: 429, code: "budget_exceeded" });
    expect(upstreamOf(id)).toHaveLength(0);
    // 8,000 × $8 + (4,160 + 1,024) × $32: $0.230 held; the call then costs $0.011034.
    await edit("1024x1024", 1);
    expect(upstreamOf(id)).toHaveLength(1);
    const status = await adminRequest(gw, "GET", `/api/budgets/img-cap-${user}`);
    expect(status.json).toMatchObject({ spend_usd: "0.011034" });
  });

  it("an image request over 128 MB is refused 413 in the provider's shape, and nothing goes upstream", async () => {
    const id = newCase();
    const res = await fetch(`${gw.url}/v1/images/edits`, {
      method: "POST",
      headers: {
        "content-type": "multipart/form-data; boundary=b",
        authorization: "Bearer sk-test",
        "x-test-case": id,
      },
      body: Buffer.alloc(129 * 1024 * 1024, 7),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe("invalid_request_error");
    expect(upstreamOf(id)).toHaveLength(0);
  });

  it("an edit bigger than other model calls may be (33 MB of images) is still read, priced and sent whole", async () => {
    const id = newCase();
    const big = Buffer.alloc(33 * 1024 * 1024, 7);
    const { response } = await openai.images
      .edit(
        { model: "gpt-image-1", image: await toFile(big, "big.png", { type: "image/png" }), prompt: "x" },
        tagged(id),
      )
      .withResponse();
    expect(response.status).toBe(200);
    const [up] = upstreamOf(id);
    expect(up!.bytes.length).toBeGreaterThan(big.length);
    expect(up!.bytes.indexOf(big)).toBeGreaterThan(0);
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({ kind: "llm", api: "openai.images", priced: true, cost_nanousd: 2_450_000n });
  });
});
