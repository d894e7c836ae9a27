// A background response already recorded finished, polled again inside `run.llm(…)`: the run counted its
// cost once (when a poll first found it finished, its own poll or the app's), so the run.llm of the same
// run counts nothing again from the reply; a run that never counted it counts it once, as a first poll in
// its run.llm would. A file of its own: the SDK records a response once per process, under the id its
// fixture gives it.
import { describe, expect, it } from "vitest";
import { agentRun } from "../src/index.js";
import { clientsAgainstMock, fixtureResponseCost } from "./background-helpers.js";

const clients = clientsAgainstMock();
const limits = { max_cost_usd: "100" };

describe("SDK: a finished background response polled again inside run.llm", () => {
  it("adds nothing to the run that counted it, whether a poll inside run.llm found it finished or one outside", async () => {
    const openai = clients.wrapped();
    for (const [rel, firstInLlm] of [
      ["openai/responses.gpt-5.6-sol.cache-write.json", true],
      ["openai/responses.gpt-5.cached-reasoning.json", false],
    ] as const) {
      const headers = { "x-mock-case": `sdk-bg-repoll-${firstInLlm}`, "x-mock-fixture": rel };
      await agentRun({ type: "researcher", limits }, async (run) => {
        const submitted = await openai.responses.create(
          { model: "gpt-5", input: "Research caching", background: true },
          { headers },
        );
        const poll = () => openai.responses.retrieve(submitted.id, {}, { headers });
        await poll(); // in_progress
        const found = await (firstInLlm ? run.llm("openai.responses", poll) : poll());
        expect(found.status).toBe("completed");
        expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(rel));
        for (let i = 0; i < 2; i++)
          expect((await run.llm("openai.responses", poll)).status).toBe("completed");
        expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(rel));
      });
    }
  });

  it("counts it once to another run that polls it inside its run.llm", async () => {
    const openai = clients.wrapped();
    const rel = "openai/responses.gpt-5.6-sol.cache-read.json";
    const headers = { "x-mock-case": "sdk-bg-repoll-elsewhere", "x-mock-fixture": rel };
    const submitted = await agentRun({ type: "submitter", limits }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", background: true },
        { headers },
      );
      await openai.responses.retrieve(submitted.id, {}, { headers }); // in_progress
      await openai.responses.retrieve(submitted.id, {}, { headers }); // completed: counted here
      expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(rel));
      return submitted;
    });
    await agentRun({ type: "reader", limits }, async (run) => {
      const poll = () => openai.responses.retrieve(submitted.id, {}, { headers });
      for (let i = 0; i < 2; i++) await run.llm("openai.responses", poll);
      expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(rel));
    });
  });

  it("counts it once to a run whose run.llm callback polled it, then threw or returned other than the reply", async () => {
    const openai = clients.wrapped();
    const rel = "openai/responses.gpt-4o.cached.json";
    const headers = { "x-mock-case": "sdk-bg-repoll-not-returned", "x-mock-fixture": rel };
    const submitted = await openai.responses.create(
      { model: "gpt-4o", input: "Research caching", background: true },
      { headers },
    );
    const poll = () => openai.responses.retrieve(submitted.id, {}, { headers });
    await poll(); // in_progress
    // The first finds it finished (recorded for its submission, in no run), the second recorded already.
    const callbacks = [
      async () => {
        await poll();
        throw new Error("the app's own, after its poll");
      },
      async () => (await poll()).output_text,
    ];
    for (const callback of callbacks)
      await agentRun({ type: "reader", limits }, async (run) => {
        await run.llm("openai.responses", callback).catch(() => {});
        for (let i = 0; i < 2; i++) await run.llm("openai.responses", poll);
        expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(rel));
      });
  });

  it("adds nothing to the run whose stream of it was read to its end", async () => {
    const openai = clients.wrapped();
    const rel = "openai/responses.stream.gpt-5.reasoning.sse";
    const headers = { "x-mock-case": "sdk-bg-repoll-streamed", "x-mock-fixture": rel };
    await agentRun({ type: "researcher", limits }, async (run) => {
      const stream = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", stream: true, background: true },
        { headers },
      );
      let id = "";
      for await (const ev of stream) if (ev.type === "response.created") id = ev.response.id;
      expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(rel));
      for (let i = 0; i < 2; i++)
        expect(
          (await run.llm("openai.responses", () => openai.responses.retrieve(id, {}, { headers }))).status,
        ).toBe("completed");
      expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(rel));
    });
  });
});
