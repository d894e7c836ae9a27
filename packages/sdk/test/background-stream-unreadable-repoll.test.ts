// A background stream read to its end whose final event carries usage the SDK cannot read: recorded as its
// submission (kind=other), its hold kept, the response left to the poll that reads the usage. A poll inside
// the run's `run.llm(…)` that finds it finished records it (the response's one llm record), counted once to
// the run at its cost; polled again, it adds nothing. The stream used to be the response's record
// (usage_unreadable), its run charged the worst case it held, and the poll recorded nothing. A file of its
// own: the SDK records a response once per process, under the id its fixture gives it.
import { describe, expect, it } from "vitest";
import { AgentRun, agentRun } from "../src/index.js";
import { clientsAgainstMock, fixtureResponseCost, unreadableAtTheEnd } from "./background-helpers.js";

const REL = "openai/responses.stream.gpt-5.reasoning.sse";
const CASE = { "x-mock-case": "sdk-bg-stream-unreadable", "x-mock-fixture": REL };
const request = { model: "gpt-5", input: "Research caching", stream: true, background: true } as const;

const clients = clientsAgainstMock({ fetch: unreadableAtTheEnd });
const { sent } = clients;

/** What the request holds on a run with a cost ceiling while in flight: its worst case. */
function worstCase(): bigint {
  const probe = new AgentRun({ type: "probe", limits: { max_cost_usd: "1000" } });
  return probe.holdOf({ api: "openai.responses", provider: "openai", model: "gpt-5", body: request })!
    .cost_nanousd;
}

describe("SDK: a background stream read to its end, its usage unreadable", () => {
  it("counts once to its run: a poll inside the run's run.llm records it at its cost, a second adds nothing", async () => {
    const openai = clients.wrapped();
    await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
      const stream = await openai.responses.create(request, { headers: CASE });
      let id = "";
      for await (const ev of stream) if (ev.type === "response.created") id = ev.response.id;
      expect(sent).toEqual([
        expect.objectContaining({ kind: "other", error_type: "usage_unreadable", request_id: id }),
      ]);
      expect(run.held.cost_nanousd).toBe(worstCase()); // left to the poll
      for (let i = 0; i < 2; i++) {
        const found = await run.llm("openai.responses", () =>
          openai.responses.retrieve(id, {}, { headers: CASE }),
        );
        expect(found.status).toBe("completed");
        expect(found.usage?.output_tokens).toBe(469);
      }
      expect(run.held.cost_nanousd).toBe(0n);
      expect(run.usage).toMatchObject({ cost_nanousd: fixtureResponseCost(REL), llm_calls: 1 });
      expect(sent.slice(1)).toEqual([
        expect.objectContaining({ kind: "llm", error_type: null, request_id: id, output_tokens: 469 }),
      ]);
    });
  });
});
