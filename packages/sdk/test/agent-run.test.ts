// The in-process agent-run guard, with the official openai client against the fixture-replaying mock:
// a loop that never passes through the gateway is still stopped at its ceiling.
import { emptyUsage, PricingEngine, usdToNano } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import {
  AgentRun,
  AgentRunKilledError,
  agentRun,
  type CallRecordInput,
  currentAgentRun,
  traced,
  wrapOpenAI,
} from "../src/index.js";

let mock: MockUpstream;
let client: OpenAI;
beforeAll(async () => {
  mock = await startMockUpstream();
  client = new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 });
});
afterAll(() => mock?.close());

const ask = (step: number, tag: string) =>
  client.chat.completions.create(
    { model: "o3-mini", max_completion_tokens: 3000, messages: [{ role: "user", content: `step ${step}` }] },
    { headers: { "x-test-case": tag } },
  );
const sent = (tag: string) => mock.requests.filter((r) => r.headers["x-test-case"] === tag).length;
/** A promise the test settles itself (`settle()`): once a run.llm settled, say, rather than after some ms. */
const settledLater = () => {
  let settle!: () => void;
  const settled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  return { settled, settle };
};

describe("agentRun", () => {
  it("a runaway loop is stopped at its cost ceiling: the call after the crossing one never reaches the provider", async () => {
    let steps = 0;
    const err = await agentRun(
      { type: "support", id: "sdk-run-1", limits: { max_cost_usd: "0.05" } },
      async (run) => {
        for (;;) {
          await run.llm("openai.chat", () => ask(steps, "sdk-1"));
          await run.tool("lookup", () => ({ found: false }));
          steps++;
        }
      },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(AgentRunKilledError);
    expect(err).toMatchObject({
      code: "agent_run_killed",
      runId: "sdk-run-1",
      agentType: "support",
      ceiling: "cost_nanousd",
    });
    // $0.0108427 per o3-mini reply (priced exactly as the gateway prices it): the 5th crosses $0.05,
    // and the tool call right after it is already refused
    expect(sent("sdk-1")).toBe(5);
    expect(steps).toBe(4);
  });

  it("the run's cost is the exact sum of its replies' prices", async () => {
    await agentRun({ type: "support", limits: { max_llm_calls: 3 } }, async (run) => {
      for (let i = 0; i < 3; i++) await run.llm("openai.chat", () => ask(i, "sdk-2"));
      const one = new PricingEngine().price({
        provider: "openai",
        model: "o3-mini-2025-01-31",
        usage: {
          input_uncached_tokens: 577,
          cache_read_tokens: 0,
          cache_write_5m_tokens: 0,
          cache_write_1h_tokens: 0,
          output_tokens: 2320,
          reasoning_tokens: 1792,
          input_audio_tokens: 0,
          output_audio_tokens: 0,
          image_tokens: 0,
          web_search_requests: 0,
          file_search_requests: 0,
          web_search_preview_requests: 0,
          cache_audio_read_tokens: 0,
          cache_image_read_tokens: 0,
          output_image_tokens: 0,
          input_audio_ms: 0,
          input_characters: 0,
        },
        at: Date.now(),
      }).cost.total_nanousd;
      expect(run.usage.cost_nanousd).toBe(3n * one);
      expect(run.usage).toMatchObject({ llm_calls: 3, total_tokens: 3 * (577 + 2320) });
      // max_llm_calls: the 4th is refused before it is sent
      await expect(run.llm("openai.chat", () => ask(3, "sdk-2"))).rejects.toMatchObject({
        ceiling: "llm_calls",
        value: "4",
        limit: "3",
      });
      expect(sent("sdk-2")).toBe(3);
    });
  });

  it("tool calls and depth: the call past max_tool_calls / max_span_depth does not run", async () => {
    await agentRun({ type: "tools", limits: { max_tool_calls: 2, max_span_depth: 2 } }, async (run) => {
      let ran = 0;
      await run.tool("a", () => run.tool("b", () => ran++));
      await expect(run.tool("c", () => ran++)).rejects.toBeInstanceOf(AgentRunKilledError);
      expect(ran).toBe(1);
      expect(Object.fromEntries(run.toolCalls)).toEqual({ a: 1, b: 1 });
    });
    await agentRun({ type: "deep", limits: { max_span_depth: 2 } }, async (run) => {
      const err = await run
        .tool("1", () => run.tool("2", () => run.tool("3", () => "too deep")))
        .catch((e) => e);
      expect(err).toMatchObject({ ceiling: "span_depth", value: "3", limit: "2" });
    });
  });

  it("usage counted by hand is priced on the tier served: OpenAI's flex at half the list price", async () => {
    await agentRun({ type: "tiers", limits: { max_cost_usd: "100.00" } }, async (run) => {
      const usage = { ...emptyUsage(), input_uncached_tokens: 1_000_000, output_tokens: 100_000 };
      run.recordUsage(usage, { provider: "openai", model: "gpt-5" });
      expect(run.usage.cost_nanousd).toBe(usdToNano("2.25")); // $1.25/M in, $10/M out
      run.recordUsage(usage, { provider: "openai", model: "gpt-5", serviceTier: "flex" });
      expect(run.usage.cost_nanousd).toBe(usdToNano("3.375"));
    });
  });

  it("manual kill, currentAgentRun() from deep helpers, and gateway headers", async () => {
    const helper = () => currentAgentRun()!;
    await agentRun({ type: "ops", id: "r-9", limits: { max_wall_time_s: 3600 } }, async (run) => {
      expect(helper()).toBe(run);
      expect(run.headers()).toEqual({
        "x-tollgate-agent-run-id": "r-9",
        "x-tollgate-agent-type": "ops",
        "x-tollgate-span-depth": "1",
      });
      await run.tool("t", () => expect(run.headers()["x-tollgate-span-depth"]).toBe("2"));
      run.kill("operator stop");
      await expect(run.tool("t", () => 1)).rejects.toThrow("was killed: operator stop");
    });
    expect(currentAgentRun()).toBeUndefined();
  });

  it("a wrapped client needs no run.llm: its calls are checked, counted and attributed to the run", async () => {
    const records: CallRecordInput[] = [];
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: (r) => records.push(r),
    });
    const call = (tag: string) =>
      wrapped.chat.completions.create(
        { model: "o3-mini", messages: [{ role: "user", content: "go" }] },
        { headers: { "x-test-case": tag } },
      );
    const err = await agentRun(
      { type: "loop", id: "sdk-run-3", limits: { max_cost_usd: "0.05" } },
      async () => {
        for (;;) await call("sdk-3");
      },
    ).catch((e) => e);
    expect(err).toMatchObject({ code: "agent_run_killed", ceiling: "cost_nanousd" });
    expect(sent("sdk-3")).toBe(5); // as with run.llm: the call after the crossing one never leaves
    expect(records).toHaveLength(5);
    expect(records.every((r) => r.agent_run_id === "sdk-run-3" && r.agent_type === "loop")).toBe(true);

    // run.llm around a wrapped call counts it once, not twice
    await agentRun({ type: "loop", limits: { max_llm_calls: 2 } }, async (run) => {
      await run.llm("openai.chat", () => call("sdk-4"));
      await call("sdk-4");
      expect(run.usage.llm_calls).toBe(2);
      expect(run.usage.cost_nanousd).toBe(2n * 10_842_700n);
      await expect(call("sdk-4")).rejects.toBeInstanceOf(AgentRunKilledError);
    });
    expect(sent("sdk-4")).toBe(2);
  });

  it("traced spans inside a run carry its id and type, as its calls do (the agent-runs rollup counts tool spans by them)", async () => {
    const records: CallRecordInput[] = [];
    const sink = (r: CallRecordInput) => void records.push(r);
    await agentRun({ type: "researcher", id: "sdk-run-spans", limits: { max_tool_calls: 10 } }, () =>
      traced(() => traced(async () => "found", { name: "search", kind: "tool", sink }), {
        name: "research",
        kind: "agent",
        sink,
      }),
    );
    await traced(() => "outside", { name: "after", sink }); // no run: none named
    expect(records.map((r) => [r.kind, r.agent_run_id, r.agent_type])).toEqual([
      ["tool", "sdk-run-spans", "researcher"],
      ["agent", "sdk-run-spans", "researcher"],
      ["other", undefined, undefined],
    ]);
  });

  it("a run.llm inside run.llm is the same LLM call: counted once against max_llm_calls, its usage once", async () => {
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: () => {},
    });
    const viaWrapped = () =>
      wrapped.chat.completions.create(
        { model: "o3-mini", messages: [{ role: "user", content: "go" }] },
        { headers: { "x-test-case": "sdk-nested" } },
      );
    await agentRun({ type: "nested", limits: { max_llm_calls: 2 } }, async (run) => {
      // A helper that guards its own call, called from a guarded step: the outermost counts it.
      const helper = () => run.llm("openai.chat", () => ask(0, "sdk-nested"));
      await run.llm("openai.chat", helper);
      expect(run.usage).toMatchObject({ llm_calls: 1, cost_nanousd: 10_842_700n, span_depth: 1 });
      await run.llm("openai.chat", () => run.llm("openai.chat", viaWrapped));
      expect(run.usage).toMatchObject({ llm_calls: 2, cost_nanousd: 2n * 10_842_700n });
      expect(run.killed).toBeNull();
      await expect(run.llm("openai.chat", helper)).rejects.toMatchObject({ ceiling: "llm_calls" });
    });
    expect(sent("sdk-nested")).toBe(2);
  });

  it("run.llm calls made together inside one run.llm: each reply's usage counted once, none dropped", async () => {
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: () => {},
    });
    const viaWrapped = () =>
      wrapped.chat.completions.create(
        { model: "o3-mini", messages: [{ role: "user", content: "go" }] },
        { headers: { "x-test-case": "sdk-nested-all" } },
      );
    await agentRun({ type: "nested", limits: { max_llm_calls: 5 } }, async (run) => {
      const helper = (step: number) => run.llm("openai.chat", () => ask(step, "sdk-nested-all"));
      await run.llm("openai.chat", () => Promise.all([helper(0), helper(1)]));
      expect(run.usage.cost_nanousd).toBe(2n * 10_842_700n);
      // Joined twice over, around a wrapped call: that call counts it, and no reply around it again.
      await run.llm("openai.chat", () => run.llm("openai.chat", () => run.llm("openai.chat", viaWrapped)));
      expect(run.usage.cost_nanousd).toBe(3n * 10_842_700n);
    });
    expect(sent("sdk-nested-all")).toBe(3);
  });

  it("a run.llm that makes a call of its own after one joined to it: both replies' usage counted, each once", async () => {
    await agentRun({ type: "nested", limits: { max_llm_calls: 5 } }, async (run) => {
      const helper = () => run.llm("openai.chat", () => ask(0, "sdk-nested-then-own"));
      await run.llm("openai.chat", async () => {
        await helper();
        return ask(1, "sdk-nested-then-own");
      });
      expect(run.usage.cost_nanousd).toBe(2n * 10_842_700n);
      // Its reply the joined one's (or its body): counted once.
      await run.llm("openai.chat", helper);
      await run.llm(
        "openai.chat",
        async () => (await run.llm("openai.chat", () => ask(2, "sdk-nested-then-own").withResponse())).data,
      );
      expect(run.usage.cost_nanousd).toBe(4n * 10_842_700n);
    });
    expect(sent("sdk-nested-then-own")).toBe(4);
  });

  it("a run.llm inside run.llm whose wrapped call is made once the outer settled: its usage counted once, by that call", async () => {
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: () => {},
    });
    await agentRun({ type: "nested", limits: { max_llm_calls: 5 } }, async (run) => {
      let inner!: Promise<unknown>;
      const outer = settledLater();
      await run.llm("openai.chat", async () => {
        inner = run.llm("openai.chat", async () => {
          await outer.settled;
          return wrapped.chat.completions.create(
            { model: "o3-mini", messages: [{ role: "user", content: "go" }] },
            { headers: { "x-test-case": "sdk-nested-late" } },
          );
        });
        return ask(0, "sdk-nested-late");
      });
      outer.settle();
      await inner;
      // The outer's reply and the late call, a call of its own: each counted once.
      expect(run.usage).toMatchObject({ llm_calls: 2, cost_nanousd: 2n * 10_842_700n });
    });
    expect(sent("sdk-nested-late")).toBe(2);
  });

  it("a run.llm inside another run's run.llm inside its own is still that same LLM call: counted once", async () => {
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: () => {},
    });
    await agentRun({ type: "parent", limits: { max_llm_calls: 1 } }, async (parent) => {
      // A helper that guards its own call on the parent run, called in a step of a child run's.
      const guardedAsk = () => parent.llm("openai.chat", () => ask(0, "sdk-nested-runs"));
      await parent.llm("openai.chat", () =>
        agentRun({ type: "child", limits: { max_llm_calls: 1 } }, (child) =>
          child.llm("openai.chat", guardedAsk),
        ),
      );
      expect(parent.usage).toMatchObject({ llm_calls: 1, cost_nanousd: 10_842_700n, span_depth: 1 });
      expect(parent.killed).toBeNull();
    });
    // A wrapped client's call of the parent run, made inside the child's run.llm there: the parent's one call.
    await agentRun({ type: "parent", limits: { max_llm_calls: 1 } }, async (parent) => {
      const child = new AgentRun({ type: "child", limits: { max_llm_calls: 1 } });
      await parent.llm("openai.chat", () =>
        child.llm("openai.chat", () =>
          wrapped.chat.completions.create(
            { model: "o3-mini", messages: [{ role: "user", content: "go" }] },
            { headers: { "x-test-case": "sdk-nested-runs" } },
          ),
        ),
      );
      expect(parent.usage).toMatchObject({ llm_calls: 1, cost_nanousd: 10_842_700n });
      expect(child.usage).toMatchObject({ llm_calls: 1, cost_nanousd: 10_842_700n });
    });
    expect(sent("sdk-nested-runs")).toBe(2);
  });

  it("a run.llm a tool call makes inside run.llm is an LLM call of its own: counted, its cost too, and checked at its depth", async () => {
    const step = (run: AgentRun, tag: string) =>
      run.llm("openai.chat", async () => {
        await run.tool("summarize", () => run.llm("openai.chat", () => ask(1, tag)));
        return ask(0, tag);
      });
    await agentRun({ type: "tooled", limits: { max_llm_calls: 2 } }, async (run) => {
      await step(run, "sdk-tool-in-llm");
      expect(run.usage).toMatchObject({ llm_calls: 2, cost_nanousd: 2n * 10_842_700n, span_depth: 3 });
    });
    await agentRun({ type: "tooled", limits: { max_llm_calls: 1 } }, async (run) => {
      await expect(step(run, "sdk-tool-in-llm-calls")).rejects.toMatchObject({ ceiling: "llm_calls" });
    });
    await agentRun({ type: "tooled", limits: { max_span_depth: 2 } }, async (run) => {
      await expect(step(run, "sdk-tool-in-llm-depth")).rejects.toMatchObject({ ceiling: "span_depth" });
    });
    expect([sent("sdk-tool-in-llm"), sent("sdk-tool-in-llm-calls"), sent("sdk-tool-in-llm-depth")]).toEqual([
      2, 0, 0,
    ]);
    // A wrapped client's call made by such a tool is one of its own too.
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: () => {},
    });
    await agentRun({ type: "tooled", limits: { max_llm_calls: 1 } }, async (run) => {
      const tooled = run.llm("openai.chat", async () => {
        await run.tool("summarize", () =>
          wrapped.chat.completions.create(
            { model: "o3-mini", messages: [{ role: "user", content: "go" }] },
            { headers: { "x-test-case": "sdk-tool-in-llm-wrapped" } },
          ),
        );
        return ask(0, "sdk-tool-in-llm-wrapped");
      });
      await expect(tooled).rejects.toMatchObject({ ceiling: "llm_calls", value: "2" });
    });
    expect(sent("sdk-tool-in-llm-wrapped")).toBe(0);
  });

  it("a run.llm its callback left running, made once that callback settled, is a call of its own", async () => {
    await agentRun({ type: "nested", limits: { max_llm_calls: 1 } }, async (run) => {
      let later!: Promise<unknown>;
      const outer = settledLater();
      await run.llm("openai.chat", async () => {
        later = outer.settled.then(() => run.llm("openai.chat", () => ask(1, "sdk-detached")));
        return ask(0, "sdk-detached");
      });
      outer.settle();
      await expect(later).rejects.toMatchObject({ ceiling: "llm_calls", value: "2" });
      expect(run.usage.llm_calls).toBe(1);
    });
    expect(sent("sdk-detached")).toBe(1);
  });

  it("a wrapped client's call its run.llm callback left running, made once that callback settled, is a call of its own", async () => {
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: () => {},
    });
    const call = () =>
      wrapped.chat.completions.create(
        { model: "o3-mini", messages: [{ role: "user", content: "go" }] },
        { headers: { "x-test-case": "sdk-detached-wrapped" } },
      );
    await agentRun({ type: "nested", limits: { max_llm_calls: 1 } }, async (run) => {
      let later!: Promise<unknown>;
      const outer = settledLater();
      await run.llm("openai.chat", async () => {
        later = outer.settled.then(call);
        return call();
      });
      outer.settle();
      await expect(later).rejects.toMatchObject({ ceiling: "llm_calls", value: "2" });
      expect(run.usage).toMatchObject({ llm_calls: 1, cost_nanousd: 10_842_700n });
    });
    expect(sent("sdk-detached-wrapped")).toBe(1);
  });

  it("an SDK stream helper returned from run.llm's callback makes its call a tick later: still that run.llm's one call", async () => {
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: () => {},
    });
    const headers = { "x-test-case": "sdk-stream-helper" };
    const input = [{ role: "user" as const, content: "go" }];
    const streams = async (
      guarded: <T>(api: "openai.chat" | "openai.responses", make: () => T) => Promise<T>,
    ) => {
      const chat = await guarded("openai.chat", () =>
        wrapped.chat.completions.stream({ model: "gpt-4o-mini", messages: input }, { headers }),
      );
      await chat.finalChatCompletion();
      const response = await guarded("openai.responses", () =>
        wrapped.responses.stream({ model: "gpt-5", input: "go" }, { headers }),
      );
      await response.finalResponse();
    };
    // The same streams made directly: what the run counts of them.
    const direct = await agentRun({ type: "streamed", limits: { max_llm_calls: 2 } }, async (run) => {
      await streams(async (_api, make) => make());
      return run.usage;
    });
    await agentRun({ type: "streamed", limits: { max_llm_calls: 2 } }, async (run) => {
      await streams((api, make) => run.llm(api, async () => make()));
      expect(run.usage).toMatchObject({ llm_calls: 2, cost_nanousd: direct.cost_nanousd });
      expect(run.killed).toBeNull();
    });
    expect(direct.llm_calls).toBe(2);
    expect(direct.cost_nanousd).toBeGreaterThan(0n);
    expect(sent("sdk-stream-helper")).toBe(4);
  });

  it("a callback returning a thenable that makes its call only once awaited (Anthropic's toolRunner): that run.llm's one call", async () => {
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: () => {},
    });
    const awaitedLater = () => ({
      // biome-ignore lint/suspicious/noThenProperty: a thenable is what is under test
      then: (onReply: (r: unknown) => unknown, onError: (e: unknown) => unknown) =>
        wrapped.chat.completions
          .create(
            { model: "o3-mini", messages: [{ role: "user", content: "go" }] },
            { headers: { "x-test-case": "sdk-thenable" } },
          )
          .then(onReply, onError),
    });
    await agentRun({ type: "thenable", limits: { max_llm_calls: 2 } }, async (run) => {
      await run.llm("openai.chat", awaitedLater as () => Promise<unknown>);
      expect(run.usage).toMatchObject({ llm_calls: 1, cost_nanousd: 10_842_700n });
      // Joined to an outer run.llm: its reply's usage counted once.
      await run.llm("openai.chat", () => run.llm("openai.chat", awaitedLater as () => Promise<unknown>));
      expect(run.usage).toMatchObject({ llm_calls: 2, cost_nanousd: 2n * 10_842_700n });
    });
    expect(sent("sdk-thenable")).toBe(2);
  });

  it("a killed run refuses the SDK's parse() helpers as it refuses create(): AgentRunKilledError, nothing sent", async () => {
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: () => {},
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      await agentRun({ type: "loop", limits: { max_llm_calls: 5 } }, async (run) => {
        run.kill("operator stop");
        const opts = { headers: { "x-test-case": "sdk-parse" } };
        const messages = [{ role: "user" as const, content: "go" }];
        await expect(
          wrapped.chat.completions.parse({ model: "gpt-4.1-nano", messages }, opts),
        ).rejects.toBeInstanceOf(AgentRunKilledError);
        await expect(wrapped.responses.parse({ model: "gpt-5", input: "go" }, opts)).rejects.toBeInstanceOf(
          AgentRunKilledError,
        );
      });
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
    expect(sent("sdk-parse")).toBe(0);
  });

  it("a response's image generation tool counts to the run as cost, not as another LLM call (wrapped or run.llm)", async () => {
    const records: CallRecordInput[] = [];
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: (r) => records.push(r),
    });
    const draw = () =>
      wrapped.responses.create({
        model: "gpt-5-nano",
        input: "a cat",
        tools: [{ type: "image_generation" }],
      });
    // gpt-5-nano's $0.00094555 and the image's on gpt-image-1, $0.011005.
    const both = 945_550n + 11_005_000n;
    await agentRun({ type: "draw", id: "sdk-run-img", limits: { max_cost_usd: "1" } }, async (run) => {
      await draw();
      expect(run.usage).toMatchObject({ llm_calls: 1, cost_nanousd: both });
      await run.llm("openai.responses", draw);
      expect(run.usage).toMatchObject({ llm_calls: 2, cost_nanousd: 2n * both });
    });
    expect(records.map((r) => r.api)).toEqual([
      "openai.responses",
      "openai.images",
      "openai.responses",
      "openai.images",
    ]);
    expect(records.every((r) => r.agent_run_id === "sdk-run-img")).toBe(true);
  });

  it("bad limits are a TypeError naming the field", () => {
    expect(() => agentRun({ type: "x", limits: { max_cost_usd: "-1" } }, () => 1)).toThrow(/max_cost_usd/);
    expect(usdToNano("0.05")).toBe(50_000_000n);
  });
});
