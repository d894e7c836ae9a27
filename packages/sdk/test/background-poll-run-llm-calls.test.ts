// A background response's poll inside `run.llm(…)` is no LLM call of the run, not even while it is in
// flight: a model call the run makes meanwhile is counted against max_llm_calls without it. A file of its
// own: the SDK records a response once per process, under the id its fixture gives it.
import { describe, expect, it } from "vitest";
import { AgentRunKilledError, agentRun } from "../src/index.js";
import { clientsAgainstMock } from "./background-helpers.js";

const clients = clientsAgainstMock();

describe("SDK: a poll inside run.llm, in flight", () => {
  it("takes no LLM call of its run meanwhile: a model call made then is the run's second of two, not a third", async () => {
    const openai = clients.wrapped();
    const headers = {
      "x-mock-case": "sdk-bg-poll-llm-calls",
      "x-mock-fixture": "openai/responses.gpt-4o.cached.json",
    };
    await agentRun({ type: "poller", limits: { max_llm_calls: 2 } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-4o", input: "Research caching", background: true },
        { headers },
      );
      expect(run.usage.llm_calls).toBe(1);
      const slowly = { headers: { ...headers, "x-mock-headers-delay-ms": "200" } };
      const poll = run.llm("openai.responses", () => openai.responses.retrieve(submitted.id, {}, slowly));
      const call = openai.chat.completions
        .create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "a" }] })
        .then(
          () => "sent",
          (e) => (e instanceof AgentRunKilledError ? `killed on ${e.ceiling}` : String(e)),
        );
      expect(await call).toBe("sent");
      expect((await poll).status).toBe("in_progress");
      expect(run.usage.llm_calls).toBe(2); // the submission and the model call
      expect(run.killed).toBeNull();
    });
  });
});
