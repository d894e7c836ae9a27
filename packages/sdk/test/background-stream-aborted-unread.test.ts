// A background stream (`background: true, stream: true`) the app aborts before reading anything of it: its
// response runs on at OpenAI all the same. Its first event (`response.created`), read as it comes though
// nothing asked for it, names that response, so the stream is recorded as its submission is, keeping its
// hold, and the poll that finds the response finished bills it in full. Aborted before that event came
// (read or not), nothing names the response (no header of the reply, no list of responses), so it is
// recorded as a call whose cost is unknown, its hold counted as that cost at once. A file of its own: the
// SDK records a response once per process, under the id its fixture gives it.
import { setTimeout as sleep } from "node:timers/promises";
import { buildCallRecord, extractFromSse, PricingEngine, servedAsOf } from "@tollgate/core";
import { describe, expect, it, vi } from "vitest";
import { fixture } from "../../server/test/mock-upstream.js";
import { AgentRun, agentRun } from "../src/index.js";
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

  it("is a call whose cost is unknown, its hold counted as that cost, when aborted before that event came, read or not", async () => {
    const openai = clients.wrapped();
    const probe = new AgentRun({ type: "probe", limits: { max_cost_usd: "10" } });
    const worstCase = probe.holdOf({
      api: "openai.responses",
      provider: "openai",
      model: "gpt-5.2",
      body: request,
    })!;
    for (const read of [false, true])
      await agentRun({ type: "researcher", limits: { max_cost_usd: "10" } }, async (run) => {
        const from = sent.length;
        const stream = await openai.responses.create(request, {
          headers: {
            ...CASE,
            "x-mock-case": `sdk-bg-stream-aborted-early-${read}`,
            "x-mock-chunk-delay-ms": "1000",
          },
        });
        const reading = read
          ? (async () => {
              for await (const _ of stream);
            })()
          : null;
        await sleep(50);
        stream.controller.abort();
        await reading;
        await vi.waitFor(() => expect(sent.length).toBe(from + 1));
        expect(sent[from]).toMatchObject({
          kind: "llm",
          status: "ok",
          error_type: "background_unseen",
          request_id: expect.stringMatching(/^req_mock/), // the reply's: the only id there is
          agent_run_id: run.id,
        });
        expect(sent[from]).not.toHaveProperty("cost_source"); // not a stream cut short: nothing to estimate
        const stored = buildCallRecord(sent[from], { workspaceId: "default", engine: new PricingEngine() });
        expect(stored.ok && stored.record).toMatchObject({
          priced: false,
          price_ref: "no_usage",
          cost_nanousd: 0n,
        });
        // Gone at once (no poll will come), counted at the most it could cost, as any call whose cost is unknown.
        expect(run.held).toEqual(empty);
        expect(run.usage.cost_nanousd).toBe(worstCase.cost_nanousd);
        await sleep(50);
        expect(sent).toHaveLength(from + 1);
      });
  });
});
