// The in-process guard's holds, with the official clients wrapped by the SDK against the fixture-replaying
// mock: a wrapped call of an agent run holds its worst case while in flight, so parallel calls of one run
// cannot all pass a cost ceiling that the first of them would have reached (as through the gateway).
import { setTimeout as sleep } from "node:timers/promises";
import Anthropic from "@anthropic-ai/sdk";
import { emptyUsage, PricingEngine, USAGE_FIELDS, usdToNano } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import {
  AgentRun,
  AgentRunHeldError,
  AgentRunKilledError,
  agentRun,
  type CallRecordInput,
  wrapAnthropic,
  wrapOpenAI,
} from "../src/index.js";
import { exposedGc } from "./gc.js";

let mock: MockUpstream;
let openai: OpenAI;
let anthropic: Anthropic;
const records: CallRecordInput[] = [];
beforeAll(async () => {
  mock = await startMockUpstream();
  const sink = (r: CallRecordInput) => records.push(r);
  openai = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), { sink });
  anthropic = wrapAnthropic(new Anthropic({ apiKey: "sk-ant-test", baseURL: mock.url, maxRetries: 0 }), {
    sink,
  });
});
afterAll(() => mock?.close());

const sent = (tag: string) => mock.requests.filter((r) => r.headers["x-test-case"] === tag).length;
const outcome = (p: PromiseLike<unknown>) =>
  Promise.resolve(p).then(
    () => "ok",
    (e) => (e instanceof AgentRunKilledError || e instanceof AgentRunHeldError ? e.code : String(e)),
  );
/** o3-mini with a 3,000-token cap: ~$0.0133 held, $0.0108427 spent (the fixture's reply). */
const o3 = (tag: string, headers: Record<string, string> = {}, content = tag, signal?: AbortSignal) =>
  openai.chat.completions.create(
    { model: "o3-mini", max_completion_tokens: 3000, messages: [{ role: "user", content }] },
    { headers: { "x-test-case": tag, ...headers }, signal },
  );
const O3_REPLY = usdToNano("0.0108427");

describe("agentRun holds", () => {
  it("parallel calls of a wrapped OpenAI client hold their worst case: they take turns near the ceiling, crossed once, as in a loop", async () => {
    const run = await agentRun(
      { type: "fan-out", id: "sdk-fan-out", limits: { max_cost_usd: "0.05" } },
      async (run) => {
        // All ten in flight together, as in the gateway's test of the same fan-out.
        const slow = { "x-mock-headers-delay-ms": "200" };
        const calls = Array.from({ length: 10 }, (_, i) => o3("fan-out", slow, `branch ${i}`));
        // Four holds fit under $0.05 at once; the others wait for them to settle.
        expect(run.held.cost_nanousd).toBeGreaterThan(3n * usdToNano("0.0132"));
        expect(run.usage.llm_calls).toBe(4);
        const outcomes = await Promise.all(calls.map(outcome));
        // The fifth crosses $0.05 and kills the run; the five still waiting are refused by the kill.
        expect(outcomes.filter((o) => o === "ok")).toHaveLength(5);
        expect(outcomes.filter((o) => o === "agent_run_killed")).toHaveLength(5);
        return run;
      },
    );
    expect(sent("fan-out")).toBe(5);
    // Spent as a sequential loop would have; without holds, all ten ran ($0.108).
    expect(run.usage).toMatchObject({ llm_calls: 5, cost_nanousd: 5n * O3_REPLY });
    expect(run.killed?.ceiling).toBe("cost_nanousd");
    expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
  });

  it("parallel calls of a wrapped Anthropic client, through Promise.all: the call that crosses the ceiling is the last", async () => {
    const call = (i: number) =>
      anthropic.messages.create(
        {
          model: "claude-sonnet-4-5",
          max_tokens: 1024,
          messages: [{ role: "user", content: `branch ${i}` }],
        },
        { headers: { "x-test-case": "fan-out-anthropic", "x-mock-headers-delay-ms": "100" } },
      );
    const one = await agentRun({ type: "probe", limits: { max_llm_calls: 1 } }, async (run) => {
      await call(-1);
      return run.usage.cost_nanousd;
    });
    // One call's worst case ($0.0154 of output) is over the ceiling: they go one at a time, and the
    // fourth crosses it.
    const ceiling = (7n * one) / 2n;
    const run = await agentRun(
      { type: "fan-out", limits: { max_cost_usd: (Number(ceiling) / 1e9).toFixed(9) } },
      async (run) => {
        const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => outcome(call(i))));
        expect(outcomes.filter((o) => o === "ok")).toHaveLength(4);
        return run;
      },
    );
    expect(run.killed?.ceiling).toBe("cost_nanousd");
    expect(run.usage).toMatchObject({ llm_calls: 4, cost_nanousd: 4n * one });
    expect(sent("fan-out-anthropic")).toBe(1 + 4);
  });

  it("run.llm around wrapped calls: the wrapped call holds, so parallel branches take turns as well", async () => {
    const run = await agentRun({ type: "fan-out", limits: { max_cost_usd: "0.05" } }, async (run) => {
      const slow = { "x-mock-headers-delay-ms": "100" };
      const branch = (i: number) => run.llm("openai.chat", () => o3("fan-out-llm", slow, `branch ${i}`));
      await Promise.all(Array.from({ length: 8 }, (_, i) => outcome(branch(i))));
      return run;
    });
    expect(sent("fan-out-llm")).toBe(5);
    expect(run.usage).toMatchObject({ llm_calls: 5, cost_nanousd: 5n * O3_REPLY });
  });

  it("run.llm around a client it did not wrap holds nothing: under a cost or token ceiling it says so, once a process", async () => {
    const plain = new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 });
    const params = { model: "gpt-4.1-nano", messages: [{ role: "user" as const, content: "a" }] };
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      // No ceiling that holds: nothing to hold. A wrapped client's call inside holds.
      await agentRun({ type: "counted", limits: { max_llm_calls: 5 } }, (run) =>
        run.llm("openai.chat", () => plain.chat.completions.create(params)),
      );
      await agentRun({ type: "held", limits: { max_cost_usd: "1" } }, (run) =>
        run.llm("openai.chat", () => openai.chat.completions.create(params)),
      );
      await sleep(10); // warnings are emitted on the next tick
      expect(warnings).toEqual([]);
      await agentRun({ type: "unheld", id: "sdk-unheld", limits: { max_cost_usd: "1" } }, async (run) => {
        await run.llm("openai.chat", () => plain.chat.completions.create(params));
        await run.llm("openai.chat", () => plain.chat.completions.create(params));
        expect(run.usage.llm_calls).toBe(2); // counted all the same
      });
      await sleep(10);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ code: "TOLLGATE_LLM_UNHELD" });
      expect(warnings[0]!.message).toContain("agent run sdk-unheld (unheld): run.llm(…) made no call");
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("run.llm of an OpenAI API around a client not wrapped, in a run without room, is counted as its callback starts: max_llm_calls holds for calls made at once", async () => {
    const plain = new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 });
    const params = { model: "gpt-4.1-nano", messages: [{ role: "user" as const, content: "a" }] };
    const unwrapped = (run: AgentRun) =>
      run.llm("openai.chat", () =>
        plain.chat.completions.create(params, {
          headers: { "x-test-case": "llm-unwrapped-max", "x-mock-headers-delay-ms": "100" },
        }),
      );
    await agentRun({ type: "capped", limits: { max_cost_usd: "0.013", max_llm_calls: 2 } }, async (run) => {
      // o3-mini's hold (~$0.0133) fills $0.013: both callbacks go at once, nothing inside can wait.
      const first = outcome(o3("llm-unwrapped-first", { "x-mock-headers-delay-ms": "300" }));
      const both = await Promise.all([outcome(unwrapped(run)), outcome(unwrapped(run))]);
      expect(both).toEqual(["ok", "agent_run_killed"]); // the third LLM call of a run allowed two
      expect(await first).toBe("ok");
      expect(run.usage.llm_calls).toBe(2);
      expect(run.killed?.ceiling).toBe("llm_calls");
    });
    expect(sent("llm-unwrapped-max")).toBe(1);
  });

  it("a stream made inside run.llm counts its usage as its record reads it, and holds until its end", async () => {
    const run = await agentRun({ type: "streamer", limits: { max_cost_usd: "1.00" } }, async (run) => {
      const stream = await run.llm("openai.chat", () =>
        openai.chat.completions.create({
          model: "gpt-4o-mini",
          max_tokens: 1000,
          messages: [{ role: "user", content: "a" }],
          stream: true,
        }),
      );
      expect(run.held.cost_nanousd).toBeGreaterThan(0n); // returned, not read yet
      for await (const _ of stream);
      return run;
    });
    expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
    expect(run.usage.llm_calls).toBe(1);
    // Priced as its record is (a stream's reply was counted at $0 by run.llm, which reads no stream).
    expect(run.usage.total_tokens).toBe(
      (records.at(-1)!.input_uncached_tokens ?? 0) + (records.at(-1)!.output_tokens ?? 0),
    );
    expect(run.usage.cost_nanousd).toBeGreaterThan(0n);
  });

  it("a token ceiling: calls in flight hold their token estimate", async () => {
    // Each holds its ~3,020 tokens (3,000 out and its request's); 2,897 used a reply.
    const run = await agentRun({ type: "tokens", limits: { max_total_tokens: 8000 } }, async (run) => {
      const slow = { "x-mock-headers-delay-ms": "100" };
      const calls = Array.from({ length: 6 }, (_, i) => o3("fan-out-tokens", slow, `branch ${i}`));
      // Two holds leave room under 8,000; three reach it.
      expect(run.usage.llm_calls).toBe(3);
      expect(run.held.total_tokens).toBeGreaterThan(9000);
      expect(run.held.cost_nanousd).toBe(0n); // no cost ceiling: no cost held
      await Promise.all(calls.map(outcome));
      return run;
    });
    // 2,897 + 2,897 + 2,897 crosses 8,000: three calls, as in a loop.
    expect(run.usage).toMatchObject({ llm_calls: 3, total_tokens: 3 * 2897 });
    expect(run.killed?.ceiling).toBe("total_tokens");
  });

  it("with holdWaitMs 0, a call the holds turn away gets AgentRunHeldError at once, as the gateway's 429 rate_limited; it is no kill", async () => {
    await agentRun(
      { type: "held-bot", id: "sdk-held-1", limits: { max_cost_usd: "0.01" }, holdWaitMs: 0 },
      async (run) => {
        const first = o3("held-1", { "x-mock-headers-delay-ms": "300" });
        const e = await o3("held-2").catch((err) => err);
        expect(e).toBeInstanceOf(AgentRunHeldError);
        expect(e).toMatchObject({
          code: "rate_limited",
          runId: "sdk-held-1",
          agentType: "held-bot",
          ceiling: "cost_nanousd",
          used: "0",
          limit: usdToNano("0.01").toString(),
          held: run.held.cost_nanousd.toString(),
        });
        expect(BigInt(e.held)).toBeGreaterThan(usdToNano("0.01"));
        expect(BigInt(e.requested)).toBe(BigInt(e.held)); // the same request, the same worst case
        expect(e.message).toContain("held by its calls in flight reach its cost_nanousd ceiling $0.01");
        expect(run.killed).toBeNull();
        // A call the app counts by hand cannot wait either.
        expect(() => run.beginLlmCall()).toThrow(AgentRunHeldError);
        await first;
        expect(run.killed?.ceiling).toBe("cost_nanousd");
        expect(run.usage.llm_calls).toBe(1);
      },
    );
    expect(sent("held-2")).toBe(0);
  });

  it("AgentRunHeldError tells a wrapped call how it could hold less, by what decides its worst case: never max_tokens for an image or speech call, nothing of a call not seen", async () => {
    const held = (call: PromiseLike<unknown>) =>
      Promise.resolve(call).then(
        () => expect.unreachable("held back"),
        (e: unknown) => {
          expect(e).toBeInstanceOf(AgentRunHeldError);
          return (e as AgentRunHeldError).message;
        },
      );
    await agentRun({ type: "held-bot", limits: { max_cost_usd: "0.01" }, holdWaitMs: 0 }, async (run) => {
      const first = o3("hint-1", { "x-mock-headers-delay-ms": "300" });
      const image = await held(
        openai.images.generate(
          { model: "gpt-image-1", prompt: "a lighthouse", n: 2 },
          { headers: { "x-test-case": "hint-2" } },
        ),
      );
      expect(image).toContain("fewer (n) or smaller (size) images");
      expect(image).not.toMatch(/max_tokens to hold less|Set max_tokens/);
      const speech = await held(
        openai.audio.speech.create(
          { model: "gpt-4o-mini-tts", voice: "alloy", input: "Hello there." },
          { headers: { "x-test-case": "hint-2" } },
        ),
      );
      expect(speech).toContain("a shorter text reserves less");
      expect(speech).not.toMatch(/max_tokens to hold less|Set max_tokens/);
      const chat = await held(
        openai.chat.completions.create(
          { model: "o3-mini", max_completion_tokens: 500, messages: [{ role: "user", content: "b" }] },
          { headers: { "x-test-case": "hint-2" } },
        ),
      );
      expect(chat).toContain("This call's max_completion_tokens of 500 is reserved whole as output");
      // A call counted by hand is not seen here: nothing is said of what it could hold.
      expect(() => run.beginLlmCall()).toThrow(/\(this call would hold \$0\.00\)$/);
      await first;
    });
    expect(sent("hint-2")).toBe(0);
  });

  it("under a token ceiling, AgentRunHeldError names the cap a call set, but none to a call holding no output (a cap would add to its hold)", async () => {
    const held = (body: Record<string, unknown>) =>
      openai.chat.completions
        .create(
          { model: "o3-mini", messages: [{ role: "user", content: "b" }], ...body },
          { headers: { "x-test-case": "hint-tokens-2" } },
        )
        .then(
          () => expect.unreachable("held back"),
          (e: unknown) => {
            expect(e).toBeInstanceOf(AgentRunHeldError);
            return (e as AgentRunHeldError).message;
          },
        );
    await agentRun({ type: "held-bot", limits: { max_total_tokens: 1000 }, holdWaitMs: 0 }, async () => {
      const first = o3("hint-tokens-1", { "x-mock-headers-delay-ms": "300" });
      expect(await held({ max_completion_tokens: 500 })).toContain(
        "This call's max_completion_tokens of 500 is reserved whole as output",
      );
      expect(await held({})).toMatch(/\(this call would hold \d+ tokens\)$/);
      await first;
    });
    expect(sent("hint-tokens-2")).toBe(0);
  });

  it("a call waits for the holds at most holdWaitMs, then gets AgentRunHeldError; nothing is sent or counted for it", async () => {
    await agentRun({ type: "held-bot", limits: { max_cost_usd: "0.01" }, holdWaitMs: 150 }, async (run) => {
      const first = o3("wait-1", { "x-mock-headers-delay-ms": "600" });
      const started = Date.now();
      const e = await o3("wait-2").catch((err) => err);
      const waited = Date.now() - started;
      expect(e).toBeInstanceOf(AgentRunHeldError);
      expect(waited).toBeGreaterThanOrEqual(140);
      expect(waited).toBeLessThan(550);
      expect(run.usage.llm_calls).toBe(1);
      await first;
    });
    expect(sent("wait-2")).toBe(0);
  });

  it("a call's timeout bounds its wait in line: past it, AgentRunHeldError, as past holdWaitMs; nothing sent", async () => {
    // The client's timeout (withOptions), not only a request's, and shorter than the default 30 s wait.
    const short = openai.withOptions({ timeout: 200 });
    await agentRun({ type: "impatient", limits: { max_cost_usd: "0.01" } }, async (run) => {
      const first = outcome(o3("bounded-1", { "x-mock-headers-delay-ms": "700" })); // read as it comes
      const started = Date.now();
      const e = await short.chat.completions
        .create(
          { model: "o3-mini", max_completion_tokens: 3000, messages: [{ role: "user", content: "b" }] },
          { headers: { "x-test-case": "bounded-2" } },
        )
        .catch((err) => err);
      const waited = Date.now() - started;
      expect(e).toBeInstanceOf(AgentRunHeldError); // not the kill the first call's reply makes at 700 ms
      expect(waited).toBeGreaterThanOrEqual(190);
      expect(waited).toBeLessThan(600);
      expect(run.usage.llm_calls).toBe(1);
      expect(await first).toBe("ok");
    });
    expect(sent("bounded-2")).toBe(0);
  });

  it("a call's wait in line counts against its timeout: it goes out with what is left of it", async () => {
    // One o3-mini hold (~$0.0133) fills $0.013; its reply ($0.0108) leaves room for the next.
    await agentRun({ type: "impatient", limits: { max_cost_usd: "0.013" } }, async (run) => {
      const first = outcome(o3("time-left-1", { "x-mock-headers-delay-ms": "400" })); // read as it comes
      const started = Date.now();
      // 700 ms in all: ~400 of them in line, so the reply's 500 ms to its headers is past it.
      const e = await openai.chat.completions
        .create(
          { model: "o3-mini", max_completion_tokens: 3000, messages: [{ role: "user", content: "b" }] },
          { headers: { "x-test-case": "time-left-2", "x-mock-headers-delay-ms": "500" }, timeout: 700 },
        )
        .catch((err) => err);
      // Timed out: with its whole 700 ms after the wait, the reply's 500 ms would have come in time.
      expect(e).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
      expect(Date.now() - started).toBeGreaterThanOrEqual(650); // it did wait in line first
      expect(await first).toBe("ok");
      expect(run.usage.llm_calls).toBe(2);
      expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
    });
    expect(sent("time-left-2")).toBe(1);
  });

  it("a call that waited in line gets the whole timeout for its SDK's retries, as without the wait: the wait came before its first attempt only", async () => {
    // ~400 ms in line leave the first attempt ~300 of its 700; the mock never answers it, and answers the
    // retry in 500 ms: past what was left, within the whole timeout, which the SDKs give every attempt.
    const retried = (tag: string) => ({
      headers: { "x-test-case": tag, "x-mock-scenario": "hang-once", "x-mock-headers-delay-ms": "500" },
    });
    const slow = { headers: { "x-mock-headers-delay-ms": "400" } };
    const messages = [{ role: "user" as const, content: "retried" }];
    const claude = { model: "claude-sonnet-4-5", max_tokens: 1024, messages };
    const cases = [
      {
        // o3-mini's hold (~$0.0133) fills $0.013.
        limit: "0.013",
        first: () => o3("retried-first", slow.headers),
        retried: () =>
          openai
            .withOptions({ maxRetries: 1, timeout: 700 })
            .chat.completions.create(
              { model: "o3-mini", max_completion_tokens: 3000, messages },
              retried("retried-openai"),
            ),
      },
      {
        // Claude's (~$0.0159) fills $0.015.
        limit: "0.015",
        first: () =>
          anthropic.messages.create({ ...claude, messages: [{ role: "user", content: "a" }] }, slow),
        retried: () =>
          anthropic
            .withOptions({ maxRetries: 1, timeout: 700 })
            .messages.create(claude, retried("retried-anthropic")),
      },
    ];
    const outcomes: string[] = [];
    for (const c of cases)
      await agentRun({ type: "retried", limits: { max_cost_usd: c.limit } }, async (run) => {
        const first = outcome(c.first()); // read as it comes
        outcomes.push(await outcome(c.retried()));
        expect(await first).toBe("ok");
        expect(run.usage.llm_calls).toBe(2);
        expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
      });
    expect(outcomes).toEqual(["ok", "ok"]);
    expect([sent("retried-openai"), sent("retried-anthropic")]).toEqual([2, 2]);
  });

  it("a call that waited in line names the timeout its first attempt has in X-Stainless-Timeout; its retry, the whole one", async () => {
    // ~1,000 ms in line leave the first attempt ~900 of its 1,900: "0" whole seconds, the retry's "1". The
    // mock never answers the first attempt, so the SDK retries it.
    const retried = (tag: string) => ({
      headers: { "x-test-case": tag, "x-mock-scenario": "hang-once" },
      timeout: 1900,
      maxRetries: 1,
    });
    const slow = { headers: { "x-mock-headers-delay-ms": "1000" } };
    const messages = [{ role: "user" as const, content: "timed" }];
    const claude = { model: "claude-sonnet-4-5", max_tokens: 1024, messages };
    const cases = [
      {
        limit: "0.013", // o3-mini's hold (~$0.0133) fills it
        first: () => o3("timed-first", slow.headers),
        retried: () =>
          openai.chat.completions.create(
            { model: "o3-mini", max_completion_tokens: 3000, messages },
            retried("timed-openai"),
          ),
      },
      {
        limit: "0.015", // Claude's (~$0.0159) fills it
        first: () =>
          anthropic.messages.create({ ...claude, messages: [{ role: "user", content: "a" }] }, slow),
        retried: () => anthropic.messages.create(claude, retried("timed-anthropic")),
      },
    ];
    for (const c of cases)
      await agentRun({ type: "timed", limits: { max_cost_usd: c.limit } }, async () => {
        const first = outcome(c.first()); // read as it comes
        expect(await outcome(c.retried())).toBe("ok");
        expect(await first).toBe("ok");
      });
    const named = (tag: string) =>
      mock.requests
        .filter((r) => r.headers["x-test-case"] === tag)
        .map((r) => r.headers["x-stainless-timeout"]);
    expect([named("timed-openai"), named("timed-anthropic")]).toEqual([
      ["0", "1"],
      ["0", "1"],
    ]);
  });

  describe("run.llm around a wrapped call, in a run without room: the call waits in its place, as one made directly", () => {
    const params = {
      model: "o3-mini",
      max_completion_tokens: 3000,
      messages: [{ role: "user" as const, content: "b" }],
    };

    it("up to its own timeout (its client's): past it, AgentRunHeldError; nothing sent, counted or held", async () => {
      const short = openai.withOptions({ timeout: 200 });
      await agentRun({ type: "impatient", limits: { max_cost_usd: "0.01" } }, async (run) => {
        const first = outcome(o3("llm-bounded-1", { "x-mock-headers-delay-ms": "700" })); // read as it comes
        const held = run.held;
        const started = Date.now();
        const e = await run
          .llm("openai.chat", () =>
            short.chat.completions.create(params, { headers: { "x-test-case": "llm-bounded-2" } }),
          )
          .catch((err) => err);
        const waited = Date.now() - started;
        expect(e).toBeInstanceOf(AgentRunHeldError); // not the kill the first call's reply makes at 700 ms
        expect(waited).toBeGreaterThanOrEqual(190);
        expect(waited).toBeLessThan(600);
        expect(run.usage.llm_calls).toBe(1);
        expect(run.held).toEqual(held);
        expect(await first).toBe("ok");
        expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
      });
      expect(sent("llm-bounded-2")).toBe(0);
    });

    it("it goes out with what is left of its timeout; its signal ends the wait", async () => {
      // One o3-mini hold (~$0.0133) fills $0.013; its reply ($0.0108) leaves room for the next.
      await agentRun({ type: "impatient", limits: { max_cost_usd: "0.013" } }, async (run) => {
        const first = outcome(o3("llm-left-1", { "x-mock-headers-delay-ms": "400" })); // read as it comes
        const started = Date.now();
        // 700 ms in all: ~400 of them in line, so the reply's 500 ms to its headers is past it.
        const timedOut = run
          .llm("openai.chat", () =>
            openai.chat.completions.create(params, {
              headers: { "x-test-case": "llm-left-2", "x-mock-headers-delay-ms": "500" },
              timeout: 700,
            }),
          )
          .catch((err) => err);
        const gone = new AbortController();
        const aborted = run
          .llm("openai.chat", () =>
            openai.chat.completions.create(params, {
              headers: { "x-test-case": "llm-left-3" },
              signal: gone.signal,
            }),
          )
          .catch((err) => err);
        await sleep(50);
        gone.abort();
        expect(await aborted).toBeInstanceOf(OpenAI.APIUserAbortError);
        expect(await timedOut).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
        expect(Date.now() - started).toBeLessThan(850);
        expect(await first).toBe("ok");
        expect(run.usage.llm_calls).toBe(2);
        expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
      });
      expect([sent("llm-left-2"), sent("llm-left-3")]).toEqual([1, 0]);
    });
  });

  it("a waiting call whose signal aborts goes nowhere: the SDK's own abort error; nothing sent, counted or held", async () => {
    await agentRun({ type: "leaver", limits: { max_cost_usd: "0.01" } }, async (run) => {
      const first = o3("leave-1", { "x-mock-headers-delay-ms": "400" });
      const held = run.held.cost_nanousd;
      const gone = new AbortController();
      const waiting = o3("leave-2", {}, "b", gone.signal).catch((e) => e);
      await sleep(50);
      gone.abort();
      expect(await waiting).toBeInstanceOf(OpenAI.APIUserAbortError);
      expect(run.held.cost_nanousd).toBe(held);
      expect(run.usage.llm_calls).toBe(1);
      await first;
    });
    expect(sent("leave-2")).toBe(0);
  });

  it("a waiting call is read as any: withResponse(), the SDKs' parse() helper and Anthropic's messages.stream() go once admitted", async () => {
    await agentRun({ type: "reader", limits: { max_cost_usd: "0.90" } }, async (run) => {
      // Anthropic's 64,000-token worst case of ~$0.96 reaches $0.90: the others wait for it.
      const first = anthropic.messages.stream(
        { model: "claude-sonnet-4-5", max_tokens: 64_000, messages: [{ role: "user", content: "a" }] },
        { headers: { "x-test-case": "reader", "x-mock-headers-delay-ms": "100" } },
      );
      const headers = { "x-test-case": "reader" };
      const messages = [{ role: "user" as const, content: "b" }];
      const params = { model: "gpt-4.1-nano", messages, max_completion_tokens: 100_000 };
      const withResponse = openai.chat.completions.create(params, { headers }).withResponse();
      const parsed = openai.chat.completions.parse(params, { headers });
      const stream = anthropic.messages.stream(
        { model: "claude-sonnet-4-5", max_tokens: 64_000, messages },
        { headers },
      );
      expect(run.usage.llm_calls).toBe(1);
      expect(sent("reader")).toBe(0);
      const { data, response } = await withResponse;
      expect(response.status).toBe(200);
      expect(data.usage?.total_tokens).toBeGreaterThan(0);
      expect((await parsed).choices[0]?.message.parsed).toBeNull();
      expect((await stream.finalMessage()).usage.output_tokens).toBeGreaterThan(0);
      await first.finalMessage();
      expect(run.usage.llm_calls).toBe(4);
      expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
    });
    expect(sent("reader")).toBe(4);
  });

  it("holdWaitMs is a number of ms a timer can keep: past 2^31 - 1, Node's timer fires at once", () => {
    const run = (holdWaitMs: number) =>
      new AgentRun({ type: "t", limits: { max_cost_usd: "1" }, holdWaitMs });
    for (const bad of [Number.NaN, -1, Number.POSITIVE_INFINITY, 2 ** 31])
      expect(() => run(bad)).toThrow(/holdWaitMs must be a number of ms from 0 \(at once\) to 2147483647/);
    expect(run(2 ** 31 - 1).holds).toBe(true);
  });

  /** Anthropic's 64,000-token worst case of ~$0.96 fills a $0.90 ceiling until it is recorded. */
  const hog = (tag: string) =>
    anthropic.messages.stream(
      { model: "claude-sonnet-4-5", max_tokens: 64_000, messages: [{ role: "user", content: "a" }] },
      { headers: { "x-test-case": tag, "x-mock-headers-delay-ms": "300" } },
    );

  it("a call that waited is timed from when it is sent, as the gateway times it: its wait is no latency of its own", async () => {
    const from = records.length;
    await agentRun({ type: "timed", limits: { max_cost_usd: "0.90" } }, async () => {
      const first = hog("timed");
      expect((await o3("timed")).usage?.total_tokens).toBeGreaterThan(0); // waited for the first
      await first.finalMessage();
    });
    const [first, waited] = ["anthropic.messages", "openai.chat"].map(
      (api) => records.slice(from).find((r) => r.api === api)!,
    );
    expect(waited!.ts_start).toBeGreaterThanOrEqual((first!.ts_end as number) - 5);
    expect((waited!.ts_end as number) - (waited!.ts_start as number)).toBeLessThan(250);
  });

  it("an Anthropic message thread's turn (its tool runner's) waits as any call, and is refused as one by a kill", async () => {
    const send = () =>
      anthropic.beta.messages
        .thread({ model: "claude-sonnet-4-5", max_tokens: 1024 }, { headers: { "x-test-case": "thread" } })
        .send({ role: "user", content: "hi" });
    await agentRun({ type: "threads", limits: { max_cost_usd: "0.90" } }, async (run) => {
      const first = hog("thread-hog");
      const reply = send();
      expect(sent("thread")).toBe(0); // waiting for the first
      expect((await reply).usage.output_tokens).toBeGreaterThan(0);
      await first.finalMessage();
      const second = hog("thread-hog");
      const refused = send().catch((e) => e);
      run.kill();
      expect(await refused).toBeInstanceOf(AgentRunKilledError);
      await second.finalMessage();
      // Refused before it could wait: the kill, not a TypeError (nor an unhandled rejection).
      expect(await send().catch((e) => e)).toBeInstanceOf(AgentRunKilledError);
    });
    expect(sent("thread")).toBe(1);
  });

  describe("a call lets its hold go however it settles", () => {
    /** Runs `settle` in a run whose ceiling one call's hold fills; returns the run after it. */
    const settled = (settle: (run: AgentRun) => Promise<unknown>) =>
      agentRun({ type: "settles", limits: { max_cost_usd: "1.00" } }, async (run) => {
        await settle(run);
        return run;
      });
    const empty = { cost_nanousd: 0n, total_tokens: 0 };

    it("a provider error: its hold goes, and it costs nothing", async () => {
      const run = await settled(async (run) => {
        const err = o3("err", { "x-mock-scenario": "server-error" });
        expect(run.held.cost_nanousd).toBeGreaterThan(0n);
        await expect(err).rejects.toBeInstanceOf(OpenAI.InternalServerError);
      });
      expect(run.held).toEqual(empty);
      expect(run.usage).toMatchObject({ llm_calls: 1, cost_nanousd: 0n });
    });

    it("a call the app aborts", async () => {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      const run = await settled(async () => {
        await expect(o3("abort", { "x-mock-scenario": "hang" }, "a", ac.signal)).rejects.toBeInstanceOf(
          OpenAI.APIUserAbortError,
        );
      });
      expect(run.held).toEqual(empty);
    });

    it("a stream cut mid-way (its connection broke), and one the app stops reading: counted as estimated", async () => {
      const stream = (scenario?: string) =>
        openai.chat.completions.create(
          {
            model: "gpt-4o-mini",
            max_tokens: 1000,
            messages: [{ role: "user", content: "a" }],
            stream: true,
          },
          { headers: scenario ? { "x-mock-scenario": scenario } : {} },
        );
      const run = await settled(async (run) => {
        const broken = await stream("reset-mid-stream");
        await expect(async () => {
          for await (const _ of broken);
        }).rejects.toThrow();
        expect(run.held).toEqual(empty);
        for await (const _ of await stream()) break;
      });
      expect(run.held).toEqual(empty);
      expect(run.usage.cost_nanousd).toBeGreaterThan(0n);
      expect(records.slice(-2).map((r) => r.error_type)).toEqual([
        "upstream_stream_broken",
        "client_disconnected",
      ]);
    });

    it("a stream the app aborts before reading it: recorded as left, at once", async () => {
      const from = records.length;
      const run = await settled(async (run) => {
        const stream = await openai.chat.completions.create({
          model: "gpt-4o-mini",
          max_tokens: 1000,
          messages: [{ role: "user", content: "a" }],
          stream: true,
        });
        stream.controller.abort();
        expect(run.held).toEqual(empty);
      });
      expect(records.slice(from).map((r) => r.error_type)).toEqual(["client_disconnected"]);
      expect(run.usage.cost_nanousd).toBeGreaterThan(0n); // its input, estimated
    });

    it("an Anthropic thread's streamed turn (a streaming tool runner's) and one answered an error are recorded, and let their holds go", async () => {
      const from = records.length;
      let message: Anthropic.Beta.BetaMessage | undefined;
      const run = await settled(async (run) => {
        const thread = anthropic.beta.messages.thread({ model: "claude-sonnet-4-5", max_tokens: 1024 });
        message = await thread.stream({ role: "user", content: "hi" }).finalMessage();
        expect(run.held).toEqual(empty);
        const failed = thread.send(
          { role: "user", content: "b" },
          {},
          { headers: { "x-mock-scenario": "server-error" } },
        );
        await expect(failed).rejects.toBeInstanceOf(Anthropic.InternalServerError);
      });
      expect(run.held).toEqual(empty);
      expect(records.slice(from)).toMatchObject([
        { stream: true, status: "ok", output_tokens: message!.usage.output_tokens },
        { stream: false, status: "error", http_status: 500 },
      ]);
      // Counted as its record reads it; the error costs nothing.
      const streamed = records.slice(from)[0]!;
      const tokens = (streamed.input_uncached_tokens ?? 0) + (streamed.output_tokens ?? 0);
      expect(run.usage).toMatchObject({ llm_calls: 2, total_tokens: tokens });
      expect(run.usage.cost_nanousd).toBeGreaterThan(0n);
    });

    it("a reply without usage counts the worst case it held, as the gateway counts it", async () => {
      let held = 0n;
      const run = await settled(async (run) => {
        const mute = o3("mute", { "x-mock-fixture": "openai/billing.costs-api.example.json" });
        held = run.held.cost_nanousd;
        await mute;
      });
      expect(run.held).toEqual(empty);
      expect(run.usage.cost_nanousd).toBe(held);
    });

    it("a call its SDK refuses before sending (Anthropic: a long call not streamed) is no call of the run", async () => {
      const run = await settled(async () => {
        expect(() =>
          anthropic.messages.create({
            model: "claude-sonnet-4-5",
            max_tokens: 64_000,
            messages: [{ role: "user", content: "a" }],
          }),
        ).toThrow(/Streaming is required/);
      });
      expect(run.held).toEqual(empty);
      expect(run.usage.llm_calls).toBe(0);
    });

    it("a reply never awaited: its hold goes once nothing can read it, counted at its worst case; a stream never read is recorded then, its estimate counted", async () => {
      const gc = exposedGc();
      const before = records.length;
      let heldByReply = 0n;
      const run = await settled(async (run) => {
        await openai.chat.completions.create({
          model: "gpt-4o-mini",
          max_tokens: 1000,
          messages: [{ role: "user", content: "a" }],
          stream: true,
        });
        const heldByStream = run.held.cost_nanousd;
        expect(heldByStream).toBeGreaterThan(0n);
        void o3("dropped", { "x-mock-headers-delay-ms": "20" });
        heldByReply = run.held.cost_nanousd - heldByStream;
        expect(heldByReply).toBeGreaterThan(0n);
        for (let i = 0; i < 50 && run.held.cost_nanousd > 0n; i++) {
          await sleep(20);
          gc();
        }
        expect(run.held).toEqual(empty);
      });
      // The stream, as one the app aborted unread: left, its input estimated from its request.
      const [stream, ...more] = records.slice(before);
      expect(more).toEqual([]);
      expect(stream).toMatchObject({ error_type: "client_disconnected", cost_source: "estimated" });
      const usage = { ...emptyUsage() };
      for (const f of USAGE_FIELDS) usage[f] = Number(stream![f] ?? 0);
      const streamCost = new PricingEngine().price({
        provider: "openai",
        model: "gpt-4o-mini",
        usage,
        at: Number(stream!.ts_start),
      }).cost.total_nanousd;
      expect(streamCost).toBeGreaterThan(0n);
      expect(run.usage.cost_nanousd).toBe(heldByReply + streamCost);
      expect(run.usage.llm_calls).toBe(2);
    });
  });
});
