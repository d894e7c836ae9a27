// A background response's hold, let go by a poll inside its run's own `run.llm(…)` that finds it finished:
// its cost is counted to the run before the hold goes, so a call waiting for room, let in then, sees the
// cost in the hold's place (as when any wrapped call settles). A file of its own: the SDK records a
// response once per process, under the id its fixture gives it.
import { formatUsd } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { AgentRun, agentRun } from "../src/index.js";
import { clientsAgainstMock, fixtureResponseCost } from "./background-helpers.js";

const clients = clientsAgainstMock();
const REL = "openai/responses.gpt-5.6-sol.cache-write.json";
const CASE = { "x-mock-case": "sdk-bg-hold-run-llm", "x-mock-fixture": REL };
const submission = { model: "gpt-5", input: "Research caching", background: true };
const other = {
  model: "o3-mini",
  max_completion_tokens: 3000,
  messages: [{ role: "user" as const, content: "a" }],
};

/** What a request holds on a run with a cost ceiling while in flight. */
function holdOf(api: "openai.responses" | "openai.chat", body: { model: string }): bigint {
  const probe = new AgentRun({ type: "probe", limits: { max_cost_usd: "1000" } });
  return probe.holdOf({ api, provider: "openai", model: body.model, body })!.cost_nanousd;
}

describe("SDK: a background response polled finished inside its run's run.llm", () => {
  it("counts its cost before its hold goes: a call waiting for room, let in then, sees it", async () => {
    const openai = clients.wrapped();
    // Room for the poll beside the submission's hold; none once another call holds too.
    const ceiling = holdOf("openai.responses", submission) + holdOf("openai.chat", other);
    await agentRun({ type: "researcher", limits: { max_cost_usd: formatUsd(ceiling) } }, async (run) => {
      const submitted = await openai.responses.create(submission, { headers: CASE });
      await openai.responses.retrieve(submitted.id, {}, { headers: CASE }); // in_progress
      const slowly = (ms: number) => ({ headers: { ...CASE, "x-mock-headers-delay-ms": String(ms) } });
      const poll = run.llm("openai.responses", () =>
        openai.responses.retrieve(submitted.id, {}, slowly(100)),
      );
      const slow = openai.chat.completions.create(other, slowly(400));
      expect(run.held.cost_nanousd).toBe(ceiling);
      // A call of a client the SDK does not wrap: run.llm waits for room itself.
      const seen = run.llm("bedrock.converse", async () => run.usage.cost_nanousd);
      expect((await poll).status).toBe("completed");
      const cost = fixtureResponseCost(REL);
      expect(await seen).toBe(cost);
      await slow;
      expect(run.usage.llm_calls).toBe(3); // the submission, the call in flight, the one let in (a poll is none)
      expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
    });
  });
});
