// traced() around a generator (an app's `async function*` that streams an answer): the span is the
// generator's while it is iterated, so the calls made as the caller reads are its children, in its agent run.

import { AsyncLocalStorage } from "node:async_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { CallRecordInput } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { agentRun, currentAgentRun, traced, wrapOpenAI } from "../src/index.js";
import { exposedGc } from "./gc.js";

let mock: MockUpstream;
let openai: OpenAI;
let sent: CallRecordInput[] = [];
const sink = (r: CallRecordInput) => void sent.push(r);

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
  openai = wrapOpenAI(new OpenAI({ apiKey: "sk-test", maxRetries: 0, baseURL: `${mock.url}/v1` }), { sink });
});
beforeEach(() => {
  sent = [];
});
afterAll(async () => {
  await mock?.close();
});

const ask = (content: string) =>
  openai.chat.completions.create({ model: "gpt-4.1-nano", messages: [{ role: "user", content }] });

/** An app's streamed answer: a model call per part, each yielded once answered, `pauseMs` apart. */
async function* answer(parts: number, pauseMs = 0): AsyncGenerator<string> {
  for (let i = 0; i < parts; i++) {
    const reply = await ask(`part ${i}`);
    yield reply.choices[0]?.message.content ?? "";
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}

/** A sync generator whose steps make calls that are read later (a call records as it is read). */
function* answerSync(parts: number, made: Promise<unknown>[]): Generator<number> {
  for (let i = 0; i < parts; i++) {
    made.push(ask(`sync part ${i}`));
    yield i;
  }
}

const spans = () => sent.filter((r) => r.kind !== "llm");
const calls = () => sent.filter((r) => r.kind === "llm");

/** Waits for the records of the calls made. */
async function recorded(llm: number): Promise<void> {
  await expect.poll(() => calls().length).toBe(llm);
}

describe("traced() around a generator", () => {
  it("an async generator read outside its agent run: its calls are the span's children, in its run; the span lasts the reading", async () => {
    let runId = "";
    const stream = await agentRun({ type: "answerer", limits: { max_llm_calls: 10 } }, async (run) => {
      runId = run.id;
      return traced(() => answer(3, 20), { name: "answer", kind: "agent", sink });
    });
    expect(spans()).toHaveLength(0); // not ended as the generator was returned
    const parts: string[] = [];
    for await (const part of stream) parts.push(part);
    expect(parts).toHaveLength(3);
    await recorded(3);
    const [span] = spans();
    expect(span).toMatchObject({ kind: "agent", status: "ok", agent_run_id: runId });
    for (const call of calls())
      expect(call).toMatchObject({
        trace_id: span!.trace_id,
        parent_span_id: span!.span_id,
        agent_run_id: runId,
      });
    expect(Number(span!.ts_end) - Number(span!.ts_start)).toBeGreaterThanOrEqual(40); // two pauses of 20 ms at least
    expect(spans()).toHaveLength(1);
  });

  it("each step is in the span's Tollgate context but the reader's own: an app's AsyncLocalStorage is the reader's", async () => {
    // The app's own context (a logger's request id): made in one request, the generator is read in another.
    const requestId = new AsyncLocalStorage<string>();
    async function* contexts() {
      yield { request: requestId.getStore(), run: currentAgentRun()?.id };
      await ask("a call between its steps");
      yield { request: requestId.getStore(), run: currentAgentRun()?.id };
    }
    let runId = "";
    const made = await requestId.run("request A", () =>
      agentRun({ type: "answerer", limits: { max_llm_calls: 10 } }, async (run) => {
        runId = run.id;
        return traced(() => contexts(), { name: "answer", sink });
      }),
    );
    const seen = await requestId.run("request B", async () => {
      const steps: unknown[] = [];
      for await (const step of made) steps.push(step);
      return steps;
    });
    expect(seen).toEqual([
      { request: "request B", run: runId },
      { request: "request B", run: runId },
    ]);
    await recorded(1);
    const [span] = spans();
    expect(calls()[0]).toMatchObject({ parent_span_id: span!.span_id, agent_run_id: runId });
  });

  it("a break in for await closes it: the span ends ok, once, with the calls made so far", async () => {
    for await (const _ of traced(() => answer(5), { name: "answer", sink })) break;
    await recorded(1);
    expect(spans()).toMatchObject([{ status: "ok", metadata: { "span.name": "answer" } }]);
    expect(calls()[0]!.parent_span_id).toBe(spans()[0]!.span_id);
  });

  it("a generator that throws ends its span as an error", async () => {
    async function* failing(): AsyncGenerator<string> {
      yield* answer(1);
      throw new RangeError("no more");
    }
    const err = await (async () => {
      for await (const _ of traced(() => failing(), { name: "answer", sink })) {
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RangeError);
    await recorded(1);
    expect(spans()).toMatchObject([{ status: "error", error_type: "RangeError" }]);
    expect(calls()[0]!.parent_span_id).toBe(spans()[0]!.span_id);
  });

  it("a sync generator: each step inside the span, which ends when it finishes", async () => {
    const made: Promise<unknown>[] = [];
    const steps = traced(() => answerSync(2, made), { name: "steps", sink });
    expect(steps.next()).toEqual({ value: 0, done: false });
    expect(spans()).toHaveLength(0);
    expect([...steps]).toEqual([1]);
    expect(spans()).toMatchObject([{ status: "ok" }]);
    await Promise.all(made);
    await recorded(2);
    for (const call of calls()) expect(call.parent_span_id).toBe(spans()[0]!.span_id);
  });

  it("an async function that returns a generator (its set-up awaited first): the span is the generator's, not ended as the promise settles", async () => {
    const stream = await traced(
      async () => {
        await ask("set-up");
        return answer(2, 20);
      },
      { name: "answer", sink },
    );
    expect(spans()).toHaveLength(0);
    for await (const _ of stream) {
    }
    await recorded(3);
    const [span] = spans();
    expect(span).toMatchObject({ status: "ok" });
    for (const call of calls()) expect(call.parent_span_id).toBe(span!.span_id);
    expect(Number(span!.ts_end) - Number(span!.ts_start)).toBeGreaterThanOrEqual(40);
  });

  it("a generator dropped unfinished: its span is recorded as abandoned once it is collected, ended at its last step", async () => {
    const gc = exposedGc();
    // The app keeps the first part and lets the generator go (no break, no return()).
    const firstPart = async () => {
      const parts = traced(() => answer(3), { name: "answer", sink });
      return (await parts.next()).value;
    };
    expect(await firstPart()).toEqual(expect.any(String));
    const lastStepBy = Date.now();
    await sleep(50); // the span must not last past its last step, however late the generator is collected
    expect(spans()).toHaveLength(0);
    await expect
      .poll(() => {
        gc();
        return spans().length;
      })
      .toBe(1);
    await recorded(1);
    const [span] = spans();
    expect(span).toMatchObject({ status: "error", error_type: "abandoned" });
    // At its last step (1 ms of rounding: ts_end is in whole ms), not 50 ms later when it was collected.
    expect(Number(span!.ts_end)).toBeLessThanOrEqual(lastStepBy + 1);
    expect(calls()[0]!.parent_span_id).toBe(span!.span_id);
  });

  it("a plain async function's span still ends when its promise settles", async () => {
    const result = await traced(async () => (await ask("plain")).id, { name: "plain", sink });
    expect(result).toEqual(expect.any(String));
    expect(spans()).toHaveLength(1);
    expect(calls()[0]!.parent_span_id).toBe(spans()[0]!.span_id);
  });
});
