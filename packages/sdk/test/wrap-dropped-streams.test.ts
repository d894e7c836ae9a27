// Wrapped clients' streams the app drops unfinished (no break, no return(): a first event kept and the rest
// let go, one half of a tee() closed and the other never read, a stream never read): the provider billed
// them, so each is recorded once it is garbage-collected, as a stream the app stops reading is.

import type Anthropic from "@anthropic-ai/sdk";
import type { CallRecordInput } from "@tollgate/core";
import type OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { exposedGc } from "./gc.js";
import { wrappedClients } from "./wrapped-clients.js";

let mock: MockUpstream;
let openai: OpenAI;
let anthropic: Anthropic;
let sent: CallRecordInput[] = [];
const sink = (r: CallRecordInput) => void sent.push(r);
const gc = exposedGc();

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

const messages = [{ role: "user" as const, content: "Hi" }];
const chatStream = () => openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
const messageStream = () =>
  anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 256, messages, stream: true });

/** The records made once what was dropped is collected: `count` of them, however many collections that takes. */
async function recordedOnceCollected(count: number): Promise<CallRecordInput[]> {
  await expect
    .poll(() => {
      gc();
      return sent.length;
    })
    .toBe(count);
  return sent;
}

/** The usage a record counts, and how it was known. */
const usageOf = (r: CallRecordInput) => ({
  input_uncached_tokens: r.input_uncached_tokens,
  output_tokens: r.output_tokens,
  cost_source: r.cost_source,
  status: r.status,
  error_type: r.error_type,
});

describe("a wrapped stream dropped unfinished", () => {
  it.each([
    ["openai chat", chatStream],
    ["anthropic messages", messageStream],
  ] as const)(
    "%s: kept its first event and let go, recorded once collected as a break there records it, ended where its reading stopped",
    async (_, create) => {
      // A break after the first event: what the app is billed for stopping there.
      for await (const _ of await create()) break;
      expect(sent).toHaveLength(1);
      const stoppedThere = usageOf(sent[0]!);
      expect(stoppedThere).toMatchObject({ error_type: "client_disconnected", cost_source: "estimated" });
      sent = [];
      const firstEvent = async () => (await (await create())[Symbol.asyncIterator]().next()).value;
      expect(await firstEvent()).toBeDefined();
      const lastStepBy = Date.now();
      expect(sent).toHaveLength(0); // not while it may still be read
      const [dropped] = await recordedOnceCollected(1);
      expect(usageOf(dropped!)).toEqual(stoppedThere);
      expect(Number(dropped!.ts_end)).toBeLessThanOrEqual(lastStepBy + 1); // 1 ms of rounding
    },
  );

  it("a break on one half of its tee(), the other never read: recorded once collected, as left", async () => {
    const breakOnOneHalf = async () => {
      const [left] = (await chatStream()).tee();
      for await (const _ of left) break;
    };
    await breakOnOneHalf();
    expect(sent).toHaveLength(0); // the other half could still read it
    const [dropped] = await recordedOnceCollected(1);
    expect(dropped).toMatchObject({
      status: "error",
      error_type: "client_disconnected",
      cost_source: "estimated",
    });
    expect(dropped!.input_uncached_tokens).toBeGreaterThan(0);
  });

  it("never read: recorded once collected, its input estimated from the request", async () => {
    await chatStream();
    const [dropped] = await recordedOnceCollected(1);
    expect(dropped).toMatchObject({
      status: "error",
      error_type: "client_disconnected",
      cost_source: "estimated",
      output_tokens: 0,
    });
    expect(dropped!.input_uncached_tokens).toBeGreaterThan(0);
  });

  it("read to its end, then collected: recorded once, as read", async () => {
    const collected = new FinalizationRegistry<() => void>((seen) => seen());
    let readCollected = false;
    const readToEnd = async () => {
      const events = (await chatStream())[Symbol.asyncIterator]();
      collected.register(events, () => {
        readCollected = true;
      });
      while (!(await events.next()).done);
    };
    await readToEnd();
    expect(sent).toHaveLength(1);
    const [read] = sent;
    expect(read).toMatchObject({ status: "ok", error_type: null });
    await expect
      .poll(() => {
        gc();
        return readCollected;
      })
      .toBe(true);
    // Its record, had it made one, was queued by the same collection as the one just seen.
    await new Promise(setImmediate);
    expect(sent).toEqual([read]);
  });
});

describe("a wrapped stream whose iterator the app lets go while a read of it is under way", () => {
  it("is not recorded while that read is pending: the read may yet bring events the app is billed for", async () => {
    const stream = await openai.chat.completions.create(
      { model: "gpt-4o-mini", messages, stream: true },
      { headers: { "x-mock-chunk-delay-ms": "60000" } }, // its first event comes after the test is done
    );
    const controller = stream.controller;
    // The app awaits the read, not the iterator (a then() on next(), a helper that keeps only the promise).
    const pending = stream[Symbol.asyncIterator]().next();
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise(setImmediate);
    }
    expect(sent).toHaveLength(0);
    // The app aborts: the read ends, and the stream is recorded once, as left.
    controller.abort();
    expect((await pending).done).toBe(true);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ status: "error", error_type: "client_disconnected" });
  });
});
