// A background response whose image generation tool made an image, polled inside `run.llm(…)` of a run it
// was not counted to: the poll counts its cost to that run, priced as its record is, the image at the
// model the submission's tool named (the poll's own request names none), when the reply's tools name none.
// A file of its own: the SDK records a response once per process.
import { describe, expect, it } from "vitest";
import { agentRun } from "../src/index.js";
import { clientsAgainstMock } from "./background-helpers.js";

/** The mock, but a poll's reply names no model in its tools, as the real reply of a tool asked for none. */
const toolModelUnnamed: typeof fetch = async (url, init) => {
  const res = await fetch(url, init);
  if (init?.method !== "GET") return res;
  const text = (await res.text()).replaceAll(',"model":"gpt-image-1-mini"', "");
  return new Response(text, { status: res.status, headers: res.headers });
};

const clients = clientsAgainstMock({ fetch: toolModelUnnamed });
const { sent } = clients;
const submission = {
  model: "gpt-5-nano",
  input: "Draw a cat",
  tools: [{ type: "image_generation" as const, model: "gpt-image-1-mini" }],
  background: true,
};
/** gpt-5-nano: 3,151 in × $0.05 + 1,970 out × $0.40 per million. */
const RESPONSE_COST = 945_550n;
/** gpt-image-1-mini: 25 text in × $2 + 272 image tokens out × $8 per million (gpt-image-1's: $0.011005). */
const IMAGE_COST = 2_226_000n;

describe("SDK: a poll inside run.llm counting a background response's image to its run", () => {
  it("prices the image at the model the submission's tool named, as its record does", async () => {
    const openai = clients.wrapped();
    // Found finished by the poll inside run.llm, and found finished before it (recorded, counted to no run).
    for (const foundBefore of [false, true]) {
      const headers = { "x-mock-case": `sdk-bg-poll-tool-model-${foundBefore}` };
      const submitted = await openai.responses.create(submission, { headers });
      const poll = () => openai.responses.retrieve(submitted.id, {}, { headers });
      await poll(); // in_progress
      if (foundBefore) expect((await poll()).status).toBe("completed");
      await agentRun({ type: "reader", limits: { max_cost_usd: "1" } }, async (run) => {
        expect((await run.llm("openai.responses", poll)).status).toBe("completed");
        expect(run.usage.cost_nanousd).toBe(RESPONSE_COST + IMAGE_COST);
      });
      const image = sent.find((r) => r.request_id === submitted.id && r.api === "openai.images");
      expect(image).toMatchObject({ model: "gpt-image-1-mini", model_requested: "gpt-image-1-mini" });
    }
  });
});
