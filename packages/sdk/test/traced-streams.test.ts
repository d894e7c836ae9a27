// traced() around a provider SDK's streamed call (openai and @anthropic-ai/sdk, wrapped, against the
// fixture-replaying mock): the span lasts while the stream is read, however it is read, and the app gets the
// SDK's own stream.

import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type Anthropic from "@anthropic-ai/sdk";
import type { CallRecordInput } from "@tollgate/core";
import type OpenAI from "openai";
import { Stream } from "openai/streaming";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { collect } from "../../server/test/helpers.js";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { agentRun, currentAgentRun, traced } from "../src/index.js";
import { exposedGc } from "./gc.js";
import { wrappedClients } from "./wrapped-clients.js";

let mock: MockUpstream;
let openai: OpenAI;
let anthropic: Anthropic;
let sent: CallRecordInput[] = [];
const sink = (r: CallRecordInput) => void sent.push(r);

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
  ({ openai, anthropic } = wrappedClients(mock.url, sink));
});
beforeEach(() => {
  sent = [];
});
afterAll(async () => {
  await mock?.close();
});

const spans = () => sent.filter((r) => r.kind !== "llm");
const calls = () => sent.filter((r) => r.kind === "llm");

/** A streamed chat completion; `headers` steer the mock (x-mock-scenario). */
const chatStream = (headers: Record<string, string> = {}) =>
  openai.chat.completions.create(
    { model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }], stream: true },
    { headers },
  );
const messageParams = {
  model: "claude-sonnet-4-5",
  max_tokens: 256,
  messages: [{ role: "user" as const, content: "Hi" }],
};

/**
 * Reads `stream` to its end, pausing `pauseMs` after its first event (the app doing something with it): its
 * events, and the spans recorded by the end of that pause.
 */
async function readPausing(
  stream: AsyncIterable<unknown>,
  pauseMs: number,
): Promise<{ events: number; spansAtPause: number }> {
  let events = 0;
  let spansAtPause = -1;
  for await (const _ of stream)
    if (events++ === 0) {
      await sleep(pauseMs);
      spansAtPause = spans().length;
    }
  return { events, spansAtPause };
}

/** The one span recorded, the calls recorded its children. */
async function theSpan(llm = 1): Promise<CallRecordInput> {
  await expect.poll(() => calls().length).toBe(llm);
  expect(spans()).toHaveLength(1);
  const [span] = spans();
  for (const call of calls())
    expect(call).toMatchObject({ trace_id: span!.trace_id, parent_span_id: span!.span_id });
  return span!;
}
/** A reply whose headers come 30 ms after its request: a span that lasts the call lasts that long at least. */
const SLOW_START = { "x-mock-headers-delay-ms": "30" };
/** Events 20 ms apart: a stream of a few of them outlasts a 30 ms pause after its first. */
const SLOW_EVENTS = { "x-mock-chunk-delay-ms": "20" };
const durationOf = (span: CallRecordInput) => Number(span.ts_end) - Number(span.ts_start);

describe("traced() around an openai stream", () => {
  it("create({stream: true}): the SDK's own Stream, whose span lasts until it is read to its end", async () => {
    const stream = await traced(() => chatStream(), { name: "answer", sink });
    expect(stream).toBeInstanceOf(Stream);
    expect(stream.controller).toBeInstanceOf(AbortController);
    expect(spans()).toHaveLength(0); // not ended as the stream was returned
    expect(await readPausing(stream, 30)).toMatchObject({ spansAtPause: 0 });
    const span = await theSpan();
    expect(span).toMatchObject({ status: "ok", metadata: { "span.name": "answer" } });
    expect(durationOf(span)).toBeGreaterThanOrEqual(30);
  });

  it("an async function that awaits the stream: the span is the stream's, not ended as the promise settles", async () => {
    const stream = await traced(async () => await chatStream(), { name: "answer", sink });
    expect(stream).toBeInstanceOf(Stream);
    expect(spans()).toHaveLength(0);
    expect(await readPausing(stream, 30)).toMatchObject({ spansAtPause: 0 });
    expect(durationOf(await theSpan())).toBeGreaterThanOrEqual(30);
  });

  it("withResponse(): the span is the stream's too", async () => {
    const { data, response } = await traced(() => chatStream(), { name: "answer", sink }).withResponse();
    expect(response.status).toBe(200);
    expect(spans()).toHaveLength(0);
    await collect(data);
    expect(await theSpan()).toMatchObject({ status: "ok" });
  });

  it("a break ends the span ok, once, where the app stopped reading", async () => {
    const stream = await traced(() => chatStream(), { name: "answer", sink });
    for await (const _ of stream) {
      await sleep(30);
      expect(spans()).toHaveLength(0);
      break;
    }
    const span = await theSpan();
    expect(span).toMatchObject({ status: "ok" });
    expect(durationOf(span)).toBeGreaterThanOrEqual(30);
    expect(calls()[0]).toMatchObject({ error_type: "client_disconnected" }); // the call was left, as unwrapped
  });

  it("a stream that breaks ends the span as an error, with the SDK's error", async () => {
    const stream = await traced(() => chatStream({ "x-mock-scenario": "reset-mid-stream" }), {
      name: "answer",
      sink,
    });
    const err = await collect(stream).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(await theSpan()).toMatchObject({ status: "error", error_type: (err as Error).name });
  });

  it("tee(): both halves read the one stream, which ends the span once read", async () => {
    const stream = await traced(() => chatStream(), { name: "answer", sink });
    const [left, right] = stream.tee();
    expect(left).toBeInstanceOf(Stream);
    const { events, spansAtPause } = await readPausing(left, 30);
    expect(spansAtPause).toBe(0);
    const span = await theSpan();
    expect(span).toMatchObject({ status: "ok" });
    expect(durationOf(span)).toBeGreaterThanOrEqual(30);
    expect(await collect(right)).toHaveLength(events);
    expect(spans()).toHaveLength(1);
  });

  it("toReadableStream(): read to its end, or cancelled, it ends the span", async () => {
    const whole = (await traced(() => chatStream(), { name: "whole", sink })).toReadableStream();
    expect(spans()).toHaveLength(0);
    expect((await new Response(whole).text()).length).toBeGreaterThan(0);
    expect(await theSpan()).toMatchObject({ status: "ok", metadata: { "span.name": "whole" } });
    sent = [];
    const cut = (await traced(() => chatStream(), { name: "cut", sink })).toReadableStream().getReader();
    expect((await cut.read()).done).toBe(false);
    await sleep(30);
    expect(spans()).toHaveLength(0);
    await cut.cancel();
    const span = await theSpan();
    expect(span).toMatchObject({ status: "ok", metadata: { "span.name": "cut" } });
    expect(durationOf(span)).toBeGreaterThanOrEqual(30);
  });

  it("a stream aborted unread (controller.abort()): left, the span ends ok then, as a break ends it", async () => {
    const stream = await traced(() => chatStream(), { name: "aborted", sink });
    await sleep(30);
    expect(spans()).toHaveLength(0);
    stream.controller.abort();
    const span = await theSpan(); // the stream is still held: not ended by its collection
    expect(span).toMatchObject({ status: "ok", metadata: { "span.name": "aborted" } });
    expect(durationOf(span)).toBeGreaterThanOrEqual(30);
    expect(calls()[0]).toMatchObject({ error_type: "client_disconnected" }); // the wrapper's record of it, left
    expect(await collect(stream)).toEqual([]);
    expect(spans()).toHaveLength(1);
  });

  it("a stream dropped after its first event (its tee() too), or unread: its span is recorded as abandoned once it is collected, ended where its reading stopped", async () => {
    const gc = exposedGc();
    // The app keeps the first event and lets the stream go (no break), or one half of its tee(); another it
    // never reads.
    const firstEvent = async (name: string, read: (s: Stream<unknown>) => AsyncIterable<unknown>) => {
      const stream = await traced(() => chatStream(), { name, sink });
      return (await read(stream)[Symbol.asyncIterator]().next()).value;
    };
    const unread = async () => void (await traced(() => chatStream(), { name: "unread", sink }));
    expect(await firstEvent("first-event", (s) => s)).toBeDefined();
    expect(await firstEvent("tee", (s) => s.tee()[0])).toBeDefined();
    await unread();
    const lastStepBy = Date.now();
    await sleep(50); // the spans must not last past their reading, however late the streams are collected
    expect(spans()).toHaveLength(0);
    await expect
      .poll(() => {
        gc();
        return spans().length;
      })
      .toBe(3);
    expect(
      spans()
        .map((s) => (s.metadata as Record<string, string>)["span.name"])
        .sort(),
    ).toEqual(["first-event", "tee", "unread"]);
    for (const span of spans()) {
      expect(span).toMatchObject({ status: "error", error_type: "abandoned" });
      expect(Number(span.ts_end)).toBeLessThanOrEqual(lastStepBy + 1); // 1 ms of rounding
    }
  });

  it("each step runs in the span and its agent run, wherever the app reads the stream", async () => {
    let runId = "";
    // An SDK Stream whose events the app makes itself (Stream's own constructor): its steps show their context.
    const stream = await agentRun({ type: "streamer", limits: { max_llm_calls: 10 } }, async (run) => {
      runId = run.id;
      return traced(
        () =>
          new Stream(async function* () {
            yield traced(() => currentAgentRun()?.id, { name: "step", sink });
          }, new AbortController()),
        { name: "stream", sink },
      );
    });
    expect(await collect(stream)).toEqual([runId]);
    const [step, outer] = spans();
    expect(outer).toMatchObject({ status: "ok", agent_run_id: runId, metadata: { "span.name": "stream" } });
    expect(step).toMatchObject({ parent_span_id: outer!.span_id, trace_id: outer!.trace_id });
  });

  it("chat.completions.stream() (a helper that reads its stream itself): the span ends when it ends", async () => {
    const helper = traced(
      () =>
        openai.chat.completions.stream(
          { model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] },
          { headers: SLOW_START },
        ),
      { name: "helper", sink },
    );
    expect(spans()).toHaveLength(0);
    const completion = await helper.finalChatCompletion();
    expect(completion.choices.length).toBeGreaterThan(0);
    const span = await theSpan();
    expect(span).toMatchObject({ status: "ok" });
    expect(durationOf(span)).toBeGreaterThanOrEqual(30);
  });
});

describe("traced() around an @anthropic-ai/sdk stream", () => {
  it("messages.create({stream: true}): the SDK's own Stream, whose span lasts until it is read", async () => {
    const stream = await traced(() => anthropic.messages.create({ ...messageParams, stream: true }), {
      name: "answer",
      sink,
    });
    expect(stream.controller).toBeInstanceOf(AbortController);
    expect(spans()).toHaveLength(0);
    expect(await readPausing(stream, 30)).toMatchObject({ spansAtPause: 0 });
    const span = await theSpan();
    expect(span).toMatchObject({ status: "ok" });
    expect(durationOf(span)).toBeGreaterThanOrEqual(30);
  });

  it("messages.stream() iterated: the span lasts until the stream ends", async () => {
    const stream = traced(() => anthropic.messages.stream(messageParams, { headers: SLOW_EVENTS }), {
      name: "answer",
      sink,
    });
    expect(await readPausing(stream, 30)).toMatchObject({ spansAtPause: 0 });
    await stream.done();
    const span = await theSpan();
    expect(span).toMatchObject({ status: "ok" });
    expect(durationOf(span)).toBeGreaterThanOrEqual(30);
  });

  it("messages.stream() never iterated, its final message awaited: the span ends with it", async () => {
    const stream = traced(() => anthropic.messages.stream(messageParams, { headers: SLOW_START }), {
      name: "answer",
      sink,
    });
    expect(spans()).toHaveLength(0);
    const message = await stream.finalMessage();
    expect(message.role).toBe("assistant");
    const span = await theSpan();
    expect(span).toMatchObject({ status: "ok" });
    expect(durationOf(span)).toBeGreaterThanOrEqual(30);
  });

  it("messages.stream() left with a break: aborted by its SDK, the span ends ok", async () => {
    const stream = traced(() => anthropic.messages.stream(messageParams, { headers: SLOW_EVENTS }), {
      name: "answer",
      sink,
    });
    for await (const _ of stream) {
      expect(spans()).toHaveLength(0);
      break;
    }
    expect(await theSpan()).toMatchObject({ status: "ok" });
    expect(stream.aborted).toBe(true); // ended by the abort its break made
  });

  it("messages.stream() that breaks: the span ends as an error, with the SDK's error", async () => {
    const stream = traced(
      () => anthropic.messages.stream(messageParams, { headers: { "x-mock-scenario": "reset-mid-stream" } }),
      { name: "answer", sink },
    );
    const err = await stream.finalMessage().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(await theSpan()).toMatchObject({ status: "error", error_type: (err as Error).name });
  });
});

describe("traced() around what is no provider SDK stream", () => {
  it("a Node Readable (an iterator() of its own, which for await does not call): the span ends as it is returned, the Readable left as it was", async () => {
    const readable = await traced(async () => Readable.from(["a", "b"]), { name: "readable", sink });
    expect(spans()).toHaveLength(1);
    expect(spans()[0]).toMatchObject({ status: "ok", metadata: { "span.name": "readable" } });
    expect(Object.hasOwn(readable, "iterator")).toBe(false);
    expect(await collect(readable)).toEqual(["a", "b"]);
    expect(spans()).toHaveLength(1);
  });
});
