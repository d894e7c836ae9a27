// A background stream read to its end whose final event carries usage the SDK cannot read: the stream is
// the response's record (usage_unreadable), and its run counted the response then, at the worst case its
// call held (as any call whose cost stays unknown). A poll inside that run's `run.llm(…)` that finds the
// response finished, with usage, is no first finding: the run counts it no more. A file of its own: the
// SDK records a response once per process, under the id its fixture gives it.
import { describe, expect, it } from "vitest";
import { AgentRun, agentRun } from "../src/index.js";
import { clientsAgainstMock, unreadableAtTheEnd } from "./background-helpers.js";

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
  it("counts once to its run: a poll inside the run's run.llm that finds it finished adds nothing", async () => {
    const openai = clients.wrapped();
    await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
      const stream = await openai.responses.create(request, { headers: CASE });
      let id = "";
      for await (const ev of stream) if (ev.type === "response.created") id = ev.response.id;
      expect(sent.at(-1)).toMatchObject({ kind: "llm", error_type: "usage_unreadable", request_id: id });
      expect(run.usage.cost_nanousd).toBe(worstCase());
      for (let i = 0; i < 2; i++) {
        const found = await run.llm("openai.responses", () =>
          openai.responses.retrieve(id, {}, { headers: CASE }),
        );
        expect(found.status).toBe("completed");
        expect(found.usage?.output_tokens).toBe(469); // readable here: the response is not counted again for it
      }
      expect(run.usage.cost_nanousd).toBe(worstCase());
      expect(sent).toHaveLength(1); // the stream's record is the response's
    });
  });
});
