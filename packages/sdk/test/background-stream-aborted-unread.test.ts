// A background stream (`background: true, stream: true`) the app aborts before reading anything of it: its
// response runs on at OpenAI all the same. Its first event (`response.created`), read as it comes though
// nothing asked for it, names that response, so the stream is recorded as its submission is, keeping its
// hold, and the poll that finds the response finished bills it in full. Aborted before that event came, it
// is recorded cut short, as any stream left unread. A file of its own: the SDK records a response once per
// process, under the id its fixture gives it.
import { setTimeout as sleep } from "node:timers/promises";
import { extractFromSse, PricingEngine, servedAsOf } from "@tollgate/core";
import { describe, expect, it, vi } from "vitest";
import { fixture } from "../../server/test/mock-upstream.js";
import { agentRun } from "../src/index.js";
import { clientsAgainstMock } from "./background-helpers.js";

const clients = clientsAgainstMock();
const { sent } = clients;
const empty = { cost_nanousd: 0n, total_tokens: 0 };
const REL = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
const CASE = { "x-mock-case": "sdk-bg-stream-aborted-unread", "x-mock-fixture": REL };
const request = {
  model: "gpt-5.2",
  input: "Tallest mountain in Alberta?",
  stream: true,
  background: true,
} as const;

describe("SDK: a background stream aborted before anything read it", () => {
  it("is recorded as its submission once its first event named the response: the poll that finds it finished bills it", async () => {
    const openai = clients.wrapped();
    const expected = extractFromSse("openai.responses", fixture(REL))!;
    const id = expected.response_id!;
    await agentRun({ type: "researcher", limits: { max_cost_usd: "10" } }, async (run) => {
      const from = sent.length;
      const stream = await openai.responses.create(request, {
        headers: { ...CASE, "x-mock-chunk-delay-ms": "50" },
      });
      await sleep(150); // its first event came: nothing read it
      stream.controller.abort();
      await vi.waitFor(() => expect(sent.length).toBe(from + 1));
      expect(sent[from]).toMatchObject({
        kind: "other",
        request_id: id,
        error_type: "client_disconnected",
        agent_run_id: run.id,
      });
      expect(run.held.cost_nanousd).toBeGreaterThan(0n); // the response runs on
      expect(run.usage.cost_nanousd).toBe(0n);
      expect((await openai.responses.retrieve(id, {}, { headers: CASE })).status).toBe("completed");
      expect(sent.slice(from + 1)).toMatchObject([{ kind: "llm", request_id: id, agent_run_id: run.id }]);
      const cost = new PricingEngine().price({
        provider: "openai",
        model: expected.model!,
        usage: expected.usage,
        serviceTier: expected.service_tier,
        servedAs: servedAsOf(expected.usage_raw),
        at: Date.now(),
      }).cost.total_nanousd;
      expect(run.usage.cost_nanousd).toBe(cost);
      expect(run.held).toEqual(empty);
    });
  });

  it("is recorded cut short, as any stream left unread, when it was aborted before that event came", async () => {
    const openai = clients.wrapped();
    const from = sent.length;
    const stream = await openai.responses.create(request, {
      headers: { ...CASE, "x-mock-case": "sdk-bg-stream-aborted-early", "x-mock-chunk-delay-ms": "1000" },
    });
    stream.controller.abort();
    await vi.waitFor(() => expect(sent.length).toBe(from + 1));
    expect(sent[from]).toMatchObject({
      kind: "llm",
      error_type: "client_disconnected",
      cost_source: "estimated",
    });
  });
});
