// Background responses polled at once inside `run.llm(…)` at max_llm_calls: no poll is an LLM call, so none
// is refused and the run is not killed, whichever starts first; a client not wrapped there, in a run with a
// background response of its own to poll, still goes as the one call past the ceiling, never two. A file of
// its own: the SDK records a response once per process, under the id its fixture gives it.
import { describe, expect, it } from "vitest";
import { AgentRunKilledError, agentRun } from "../src/index.js";
import { clientsAgainstMock } from "./background-helpers.js";

const clients = clientsAgainstMock();

/** How a promise of a guarded call ends: "ok", or the ceiling that refused it. */
const outcome = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e) => (e instanceof AgentRunKilledError ? `killed on ${e.ceiling}` : String(e)),
  );

const aTick = () => new Promise((resolve) => setTimeout(resolve, 20));

describe("SDK: polls made at once inside run.llm at max_llm_calls", () => {
  it("all go and kill nothing, each callback waiting a moment before its poll (a poll loop's sleep)", async () => {
    const openai = clients.wrapped();
    const headers = {
      "x-mock-case": "sdk-bg-polls-at-once",
      "x-mock-fixture": "openai/responses.gpt-4o.cached.json",
    };
    await agentRun({ type: "poller", limits: { max_llm_calls: 1 } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-4o", input: "Research caching", background: true },
        { headers },
      );
      const poll = () =>
        outcome(
          run.llm("openai.responses", async () => {
            await aTick();
            return openai.responses.retrieve(submitted.id, {}, { headers });
          }),
        );
      expect(await Promise.all([poll(), poll()])).toEqual(["ok", "ok"]);
      expect(run.killed).toBeNull();
      expect(run.usage.llm_calls).toBe(1); // the submission alone
    });
  });

  it("a tool call made while a poll waits to be made is no call past the ceiling: nothing is killed", async () => {
    const openai = clients.wrapped();
    const headers = {
      "x-mock-case": "sdk-bg-poll-and-tool",
      "x-mock-fixture": "openai/responses.gpt-4o.cached.json",
    };
    await agentRun({ type: "poller", limits: { max_llm_calls: 1 } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-4o", input: "Research caching", background: true },
        { headers },
      );
      const poll = outcome(
        run.llm("openai.responses", async () => {
          await aTick();
          return openai.responses.retrieve(submitted.id, {}, { headers });
        }),
      );
      expect(await outcome(run.tool("search", () => "found"))).toBe("ok");
      expect(await poll).toBe("ok");
      expect(run.killed).toBeNull();
    });
  });

  it("a client not wrapped, in a run with a background response of its own to poll: its calls made at once there after a moment cannot be told from polls, so one goes past the ceiling, the next is refused", async () => {
    const openai = clients.wrapped();
    const headers = {
      "x-mock-case": "sdk-bg-unwrapped-at-once",
      "x-mock-fixture": "openai/responses.gpt-4o.cached.json",
    };
    await agentRun({ type: "caller", limits: { max_llm_calls: 1 } }, async (run) => {
      await openai.responses.create({ model: "gpt-4o", input: "Research", background: true }, { headers });
      const call = () =>
        outcome(
          run.llm("openai.responses", async () => {
            await aTick();
            return clients.plain().responses.create({ model: "gpt-5", input: "a" }, { headers });
          }),
        );
      expect(await Promise.all([call(), call()])).toEqual(["ok", "killed on llm_calls"]);
      expect(run.usage.llm_calls).toBe(2);
      expect(run.killed?.ceiling).toBe("llm_calls");
    });
  });
});
