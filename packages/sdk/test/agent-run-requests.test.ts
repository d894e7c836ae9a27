// max_llm_calls bounds the model requests made inside one run.llm(…): its first wrapped model request is the
// call it counted; each further one (a tool loop's, a retry, calls made together, joined helpers') is one
// more LLM call, checked before it is sent (they all went out as one call).
import { setTimeout as sleep } from "node:timers/promises";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { AgentRunKilledError, agentRun, wrapAnthropic, wrapOpenAI } from "../src/index.js";

let mock: MockUpstream;
let wrapped: OpenAI;
let anthropic: Anthropic;
beforeAll(async () => {
  mock = await startMockUpstream();
  wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
    sink: () => {},
  });
  anthropic = wrapAnthropic(new Anthropic({ apiKey: "sk-ant-test", baseURL: mock.url, maxRetries: 0 }), {
    sink: () => {},
  });
});
afterAll(() => mock?.close());

/** One o3-mini reply's price: $0.0108427. */
const ONE = 10_842_700n;
const sent = (tag: string) => mock.requests.filter((r) => r.headers["x-test-case"] === tag).length;
const ask = (tag: string) =>
  wrapped.chat.completions.create(
    { model: "o3-mini", messages: [{ role: "user", content: "go" }] },
    { headers: { "x-test-case": tag } },
  );

/**
 * openai-node's runTools() against a reply that always calls the tool: 3 model requests (maxChatCompletions),
 * each one's reply asking for the tool again.
 */
const toolLoop = (tag: string) =>
  wrapped.chat.completions.runTools(
    {
      model: "gpt-5-mini",
      messages: [{ role: "user", content: "Paris?" }],
      tools: [
        {
          type: "function",
          function: {
            name: "final_result",
            description: "Notes the answer.",
            parameters: { type: "object", properties: {} },
            parse: JSON.parse,
            function: () => "noted",
          },
        },
      ],
    },
    {
      maxChatCompletions: 3,
      headers: {
        "x-test-case": tag,
        "x-mock-fixture": "conformance/payloads/openai/chat-completion.gpt-5-mini.reasoning.json",
      },
    },
  );
const runTools = (tag: string) => toolLoop(tag).finalChatCompletion();

describe("run.llm(…) around several model requests", () => {
  it("runTools' loop of model requests: each counted, and the one past max_llm_calls refused, killing the run", async () => {
    // The same loop made directly: what the run counts of it.
    const direct = await agentRun({ type: "tools", limits: { max_llm_calls: 3 } }, async (run) => {
      await runTools("req-run-tools");
      return run.usage;
    });
    expect(direct.llm_calls).toBe(3);
    await agentRun({ type: "tools", limits: { max_llm_calls: 3 } }, async (run) => {
      await run.llm("openai.chat", () => runTools("req-run-tools"));
      expect(run.usage).toMatchObject({ llm_calls: 3, cost_nanousd: direct.cost_nanousd });
      expect(run.killed).toBeNull();
    });
    // The runner returned from the callback makes its requests once run.llm settled: still counted each.
    await agentRun({ type: "tools", limits: { max_llm_calls: 3 } }, async (run) => {
      const runner = await run.llm("openai.chat", async () => toolLoop("req-run-tools"));
      await runner.finalChatCompletion();
      expect(run.usage).toMatchObject({ llm_calls: 3, cost_nanousd: direct.cost_nanousd });
    });
    expect(sent("req-run-tools")).toBe(9);

    await agentRun({ type: "tools", limits: { max_llm_calls: 2 } }, async (run) => {
      const err = await run.llm("openai.chat", () => runTools("req-run-tools-max")).catch((e) => e);
      // The runner wraps what its create() threw.
      expect(err.cause ?? err).toBeInstanceOf(AgentRunKilledError);
      expect(run.killed).toMatchObject({ ceiling: "llm_calls", value: "3", limit: "2" });
      expect(run.usage.llm_calls).toBe(2);
    });
    expect(sent("req-run-tools-max")).toBe(2);
  });

  it("wrapped calls made together, a retry loop, and joined helpers' calls: one LLM call each", async () => {
    await agentRun({ type: "several", limits: { max_llm_calls: 6 } }, async (run) => {
      // A helper that guards its own call: inside run.llm, it joins it.
      const helper = () => run.llm("openai.chat", () => ask("req-several"));
      await run.llm("openai.chat", () => Promise.all([ask("req-several"), ask("req-several")]));
      expect(run.usage).toMatchObject({ llm_calls: 2, cost_nanousd: 2n * ONE });
      await run.llm("openai.chat", async () => {
        await ask("req-several"); // a first try the app does not keep
        return ask("req-several");
      });
      expect(run.usage).toMatchObject({ llm_calls: 4, cost_nanousd: 4n * ONE });
      await run.llm("openai.chat", () => Promise.all([helper(), helper()]));
      expect(run.usage).toMatchObject({ llm_calls: 6, cost_nanousd: 6n * ONE });
      expect(run.killed).toBeNull();
    });
    expect(sent("req-several")).toBe(6);
  });

  it("a further request past max_llm_calls is refused before it is sent, killing the run", async () => {
    await agentRun({ type: "retry", limits: { max_llm_calls: 1 } }, async (run) => {
      const retried = run.llm("openai.chat", async () => {
        await ask("req-retry-max");
        return ask("req-retry-max");
      });
      await expect(retried).rejects.toMatchObject({ ceiling: "llm_calls", value: "2", limit: "1" });
      expect(run.usage).toMatchObject({ llm_calls: 1, cost_nanousd: ONE });
    });
    expect(sent("req-retry-max")).toBe(1);
    await agentRun({ type: "together", limits: { max_llm_calls: 1 } }, async (run) => {
      const [first, second] = await run.llm("openai.chat", () =>
        Promise.allSettled([ask("req-all-max"), ask("req-all-max")]),
      );
      expect(first.status).toBe("fulfilled");
      expect(second).toMatchObject({ status: "rejected", reason: { ceiling: "llm_calls", value: "2" } });
      expect(run.killed).toMatchObject({ ceiling: "llm_calls" });
      expect(run.usage).toMatchObject({ llm_calls: 1, cost_nanousd: ONE });
    });
    expect(sent("req-all-max")).toBe(1);
  });

  /** An o3-mini call holding ~$0.0133 while in flight (100 ms): four fit under $0.05. */
  const capped = (tag: string, i: number) =>
    wrapped.chat.completions.create(
      {
        model: "o3-mini",
        max_completion_tokens: 3000,
        messages: [{ role: "user", content: `branch ${i}` }],
      },
      { headers: { "x-test-case": tag, "x-mock-headers-delay-ms": "100" } },
    );

  it("requests made together under a cost ceiling take turns as those made directly: crossed once", async () => {
    await agentRun({ type: "fan-out", limits: { max_cost_usd: "0.05" } }, async (run) => {
      const outcomes = await run.llm("openai.chat", () =>
        Promise.allSettled(Array.from({ length: 10 }, (_, i) => capped("req-fan-out", i))),
      );
      // ~$0.0133 held a call: four at once, then the fifth crosses $0.05; the rest are refused by the kill.
      expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(5);
      expect(run.usage).toMatchObject({ llm_calls: 5, cost_nanousd: 5n * ONE });
      expect(run.killed?.ceiling).toBe("cost_nanousd");
      expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
    });
    expect(sent("req-fan-out")).toBe(5);
  });

  it("run.llm's made together whose callbacks await before their request take turns too: crossed once", async () => {
    await agentRun({ type: "fan-out-late", limits: { max_cost_usd: "0.05" } }, async (run) => {
      // Each let in while nothing held yet; their requests, made a tick later, find the others' holds.
      const outcomes = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          run.llm("openai.chat", async () => {
            await sleep(5);
            return capped("req-fan-out-late", i);
          }),
        ),
      );
      expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(5);
      expect(run.usage).toMatchObject({ llm_calls: 5, cost_nanousd: 5n * ONE });
      expect(run.killed?.ceiling).toBe("cost_nanousd");
      expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
    });
    expect(sent("req-fan-out-late")).toBe(5);
  });

  it("run.llm's first request, made once the run was killed, is refused as any: nothing sent", async () => {
    await agentRun({ type: "killed-meanwhile", limits: { max_cost_usd: "0.05" } }, async (run) => {
      const late = run.llm("openai.chat", async () => {
        await sleep(5);
        return ask("req-killed-meanwhile");
      });
      run.kill("stop");
      await expect(late).rejects.toMatchObject({ ceiling: "manual", value: "stop" });
    });
    expect(sent("req-killed-meanwhile")).toBe(0);
  });

  it("a further request is checked at its run.llm's depth, not one deeper", async () => {
    await agentRun({ type: "shallow", limits: { max_span_depth: 1 } }, async (run) => {
      await run.llm("openai.chat", () => Promise.all([ask("req-depth"), ask("req-depth")]));
      expect(run.usage).toMatchObject({ llm_calls: 2, span_depth: 1 });
      expect(run.killed).toBeNull();
    });
    expect(sent("req-depth")).toBe(2);
  });

  /** An Anthropic call: at 64,000 max_tokens its SDK throws as it is made, nothing sent (it may take 10+ min). */
  const claude = (tag: string, max_tokens: number) =>
    anthropic.messages.create(
      { model: "claude-sonnet-4-5", max_tokens, messages: [{ role: "user", content: "a" }] },
      { headers: { "x-test-case": tag } },
    );

  it("a further request its SDK refuses before sending it is no LLM call: its count is given back", async () => {
    await agentRun({ type: "unsent", limits: { max_llm_calls: 2 } }, async (run) => {
      await run.llm("anthropic.messages", async () => {
        await claude("req-unsent", 100);
        expect(() => claude("req-unsent", 64_000)).toThrow(/Streaming is required/);
        return claude("req-unsent", 100);
      });
      expect(run.usage.llm_calls).toBe(2);
      expect(run.killed).toBeNull();
    });
    expect(sent("req-unsent")).toBe(2);
  });

  it("a first request its SDK refuses before sending: the app's retry of it is the one LLM call", async () => {
    await agentRun({ type: "unsent-first", limits: { max_llm_calls: 1 } }, async (run) => {
      await run.llm("anthropic.messages", async () => {
        expect(() => claude("req-unsent-first", 64_000)).toThrow(/Streaming is required/);
        return claude("req-unsent-first", 100);
      });
      expect(run.usage.llm_calls).toBe(1);
      expect(run.killed).toBeNull();
    });
    expect(sent("req-unsent-first")).toBe(1);
  });
  it("a call whose signal aborted before it was sent is no LLM call: the SDK sends nothing, its count is given back", async () => {
    await agentRun({ type: "aborted-first", limits: { max_llm_calls: 1 } }, async (run) => {
      const aborted = new AbortController();
      aborted.abort();
      await expect(
        wrapped.chat.completions.create(
          { model: "o3-mini", messages: [{ role: "user", content: "go" }] },
          { headers: { "x-test-case": "req-aborted" }, signal: aborted.signal },
        ),
      ).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
      expect(run.usage.llm_calls).toBe(0);
      await ask("req-aborted"); // the one LLM call
      expect(run.usage.llm_calls).toBe(1);
      expect(run.killed).toBeNull();
    });
    expect(sent("req-aborted")).toBe(1);
  });
});
