// A background response submitted in an agent run runs on at the provider after its submission is
// answered: it keeps its hold on the run, as the gateway keeps its submission's, until a poll finds it
// finished (its cost takes the hold's place), finished without usage (nothing spent), or an hour passes.
// A file of its own: the SDK records a response once per process, under the id its fixture gives it.
import OpenAI from "openai";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AgentRunHeldError, agentRun, wrapOpenAI } from "../src/index.js";
import { clientsAgainstMock, cutBackgroundStream, fixtureResponseCost } from "./background-helpers.js";

const clients = clientsAgainstMock();
const empty = { cost_nanousd: 0n, total_tokens: 0 };
/** gpt-5's worst case (128,000 tokens of output, ~$1.28) fills $1: the run's next call is held while it runs. */
const limits = { max_cost_usd: "1" };
const submit = (client: OpenAI, headers: Record<string, string>) =>
  client.responses.create({ model: "gpt-5", input: "Research caching", background: true }, { headers });
/** A call of the run that cannot wait (holdWaitMs 0): refused while the holds fill the ceiling. */
const next = (client: OpenAI) =>
  client.chat.completions.create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "a" }] }).then(
    () => "sent",
    (e) => (e instanceof AgentRunHeldError ? "held" : String(e)),
  );

afterEach(() => {
  vi.useRealTimers();
});

describe("SDK: a background response holds on its agent run while it runs", () => {
  it("until a poll finds it finished: then its cost takes the hold's place", async () => {
    const openai = clients.wrapped();
    const rel = "openai/responses.gpt-5.cached-reasoning.json";
    const headers = { "x-mock-case": "sdk-bg-hold", "x-mock-fixture": rel };
    await agentRun({ type: "researcher", limits, holdWaitMs: 0 }, async (run) => {
      const submitted = await submit(openai, headers);
      expect(submitted.status).toBe("queued");
      const held = run.held.cost_nanousd;
      expect(held).toBeGreaterThan(1_000_000_000n);
      expect(await next(openai)).toBe("held");
      await openai.responses.retrieve(submitted.id, {}, { headers }); // in_progress
      expect(run.held.cost_nanousd).toBe(held);
      expect((await openai.responses.retrieve(submitted.id, {}, { headers })).status).toBe("completed");
      expect(run.held).toEqual(empty);
      expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(rel));
      expect(await next(openai)).toBe("sent");
    });
  });

  it("a poll inside run.llm waits for no room, not on its own submission's hold: no LLM call, it settles the submission; a model call inside waits as any", async () => {
    const openai = clients.wrapped();
    const headers = {
      "x-mock-case": "sdk-bg-hold-run-llm",
      "x-mock-fixture": "openai/responses.gpt-4o.cached.json",
    };
    await agentRun({ type: "researcher", limits, holdWaitMs: 0 }, async (run) => {
      const submitted = await submit(openai, headers);
      const poll = () => openai.responses.retrieve(submitted.id, {}, { headers });
      // The submission's hold fills the ceiling: a model call inside run.llm is refused as one outside it.
      expect(await run.llm("openai.chat", () => next(openai))).toBe("held");
      expect((await run.llm("openai.responses", poll)).status).toBe("in_progress");
      expect((await run.llm("openai.responses", poll)).status).toBe("completed");
      expect(run.held).toEqual(empty);
      expect(run.usage.llm_calls).toBe(1); // the submission's
      expect(await run.llm("openai.chat", () => next(openai))).toBe("sent");
      expect(run.usage.llm_calls).toBe(2);
    });
  });

  it("one that finishes without usage (failed before it ran) lets its hold go: nothing spent", async () => {
    const openai = clients.wrapped();
    const headers = {
      "x-mock-case": "sdk-bg-hold-failed",
      "x-mock-fixture": "openai/responses.gpt-5.6-sol.cache-write.json",
      "x-mock-scenario": "fails-in-background",
    };
    await agentRun({ type: "researcher", limits, holdWaitMs: 0 }, async (run) => {
      const submitted = await submit(openai, headers);
      await openai.responses.retrieve(submitted.id, {}, { headers }); // in_progress
      expect(run.held.cost_nanousd).toBeGreaterThan(0n);
      expect((await openai.responses.retrieve(submitted.id, {}, { headers })).status).toBe("failed");
      expect(run.held).toEqual(empty);
      expect(run.usage.cost_nanousd).toBe(0n);
    });
  });

  it("a background stream cut short keeps its stream's hold: the response runs on", async () => {
    const headers = {
      "x-mock-case": "sdk-bg-hold-cut",
      "x-mock-fixture": "openai/responses.stream.gpt-5.reasoning.sse",
    };
    await agentRun({ type: "researcher", limits, holdWaitMs: 0 }, async (run) => {
      const seen = await cutBackgroundStream(clients.wrapped(), "gpt-5", headers);
      expect(seen.length).toBeGreaterThan(0);
      expect(run.held.cost_nanousd).toBeGreaterThan(1_000_000_000n);
      expect(await next(clients.wrapped())).toBe("held");
    });
  });

  it("one nothing finds finished (no poll: webhooks) holds an hour at the most, as the gateway's hold", async () => {
    // No polls of the client's own: with the clock faked, they would come within the hour.
    const openai = wrapOpenAI(
      new OpenAI({ apiKey: "sk-test", maxRetries: 0, baseURL: clients.wrapped().baseURL }),
      {
        sink: () => {},
        followBackgroundMs: 0,
      },
    );
    const headers = {
      "x-mock-case": "sdk-bg-hold-unpolled",
      "x-mock-fixture": "openai/responses.gpt-5.6-sol.cache-read.json",
    };
    await agentRun({ type: "researcher", limits, holdWaitMs: 0 }, async (run) => {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      await submit(openai, headers);
      expect(run.held.cost_nanousd).toBeGreaterThan(0n);
      vi.advanceTimersByTime(3_599_000);
      expect(run.held.cost_nanousd).toBeGreaterThan(0n);
      vi.advanceTimersByTime(1_000);
      expect(run.held).toEqual(empty);
      expect(run.usage.cost_nanousd).toBe(0n); // as the gateway's hold expires: nothing spent
    });
  });
});
