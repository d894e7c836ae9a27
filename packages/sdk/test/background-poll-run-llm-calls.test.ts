// A background response's poll inside `run.llm(…)` is no LLM call of the run, not even while it is in
// flight: a model call the run makes meanwhile is counted against max_llm_calls without it; nor is it
// refused at max_llm_calls, nor does it kill the run there. A killed run refuses run.llm before its
// callback, poll or not. A file of its own: the SDK records a response once per process, under the id its
// fixture gives it.
import { describe, expect, it } from "vitest";
import { AgentRunKilledError, agentRun } from "../src/index.js";
import { clientsAgainstMock, fixtureResponseCost } from "./background-helpers.js";

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

/** How a promise of a guarded call ends: "ok", or the ceiling that refused it. */
const outcome = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e) => (e instanceof AgentRunKilledError ? `killed on ${e.ceiling}` : String(e)),
  );

describe("SDK: a poll inside run.llm at the run's ceilings", () => {
  it("at max_llm_calls: goes, counts the response's cost, and kills nothing; a model call made so is still refused", async () => {
    const openai = clients.wrapped();
    const rel = "openai/responses.gpt-5.6-sol.cache-read.json";
    const headers = { "x-mock-case": "sdk-bg-poll-at-max-calls", "x-mock-fixture": rel };
    await agentRun({ type: "poller", limits: { max_llm_calls: 1 } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-5.6-sol", input: "Research caching", background: true },
        { headers },
      );
      const poll = () =>
        run.llm("openai.responses", () => openai.responses.retrieve(submitted.id, {}, { headers }));
      expect((await poll()).status).toBe("in_progress");
      expect((await poll()).status).toBe("completed");
      expect(run.killed).toBeNull();
      expect(run.usage).toMatchObject({ llm_calls: 1, cost_nanousd: fixtureResponseCost(rel) });
      const before = clients.sent.length;
      const call = run.llm("openai.responses", () =>
        openai.responses.create({ model: "gpt-5.6-sol", input: "More" }, { headers }),
      );
      expect(await outcome(call)).toBe("killed on llm_calls"); // refused before it was sent
      expect(clients.sent).toHaveLength(before);
      expect(run.usage.llm_calls).toBe(1);
      expect(run.killed?.ceiling).toBe("llm_calls");
    });
  });

  it("around a client not wrapped, at max_llm_calls, in a run that submitted no background response: refused before its callback, as any call, so the ceiling holds exactly", async () => {
    const headers = { "x-mock-case": "sdk-bg-unwrapped-at-max-calls" };
    await agentRun({ type: "caller", limits: { max_llm_calls: 1 } }, async (run) => {
      let made = 0;
      const call = () =>
        outcome(
          run.llm("openai.responses", () => {
            made++;
            return clients.plain().responses.create({ model: "gpt-5", input: "a" }, { headers });
          }),
        );
      expect(await call()).toBe("ok"); // 1 of 1
      // No response of its own to poll: its callback's call is one past the ceiling, made or not.
      expect(await Promise.all([call(), call()])).toEqual(["killed on llm_calls", "killed on llm_calls"]);
      expect(made).toBe(1);
      expect(run.usage.llm_calls).toBe(1);
      expect(run.killed?.ceiling).toBe("llm_calls");
    });
  });

  it("at max_llm_calls, a poll a tool call makes inside such a poll's run.llm goes too: it does not wait on the run.llm it is made in", async () => {
    const openai = clients.wrapped();
    const rel = "openai/responses.gpt-5.6-sol.cache-write.json";
    const headers = { "x-mock-case": "sdk-bg-poll-in-tool-at-max", "x-mock-fixture": rel };
    await agentRun({ type: "poller", limits: { max_llm_calls: 1 } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-5.6-sol", input: "Research caching", background: true },
        { headers },
      );
      const poll = () => openai.responses.retrieve(submitted.id, {}, { headers });
      const step = run.llm("openai.responses", async () => {
        await run.tool("check", () => run.llm("openai.responses", poll));
        return poll();
      });
      const stuck = new Promise((resolve) => setTimeout(() => resolve("stuck"), 2_000));
      expect(await Promise.race([outcome(step), stuck])).toBe("ok");
      expect(run.killed).toBeNull();
      expect(run.usage).toMatchObject({ llm_calls: 1, cost_nanousd: fixtureResponseCost(rel) });
    });
  });

  it("a killed run refuses run.llm before its callback, poll or not; outside it, the poll goes and counts the cost", async () => {
    const openai = clients.wrapped();
    const rel = "openai/responses.gpt-5.cached-reasoning.json";
    const headers = { "x-mock-case": "sdk-bg-poll-killed", "x-mock-fixture": rel };
    await agentRun({ type: "poller", limits: { max_cost_usd: "100" } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", background: true },
        { headers },
      );
      run.kill("stopped by hand");
      const poll = () => openai.responses.retrieve(submitted.id, {}, { headers });
      let called = false;
      const inLlm = run.llm("openai.responses", () => {
        called = true;
        return poll();
      });
      expect(await outcome(inLlm)).toBe("killed on manual");
      expect(called).toBe(false);
      expect((await poll()).status).toBe("in_progress");
      expect((await poll()).status).toBe("completed");
      expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(rel));
    });
  });
});
