// A background response streamed to its end, then polled by another process (whose SDK never saw it): both
// record its one llm record, under the same event id, so the store keeps one and budgets count it once.
// A file of its own: the SDK records a response once per process, under the id its fixture gives it.

import type { CallRecordInput } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { wrapOpenAI } from "../src/index.js";

const REL = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
const headers = { "x-mock-case": "sdk-stream-polled-elsewhere", "x-mock-fixture": REL };

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

const client = () => new OpenAI({ apiKey: "sk-test", maxRetries: 0, baseURL: `${mock.url}/v1` });

describe("SDK: a background response streamed to its end, then polled by another process", () => {
  it("is recorded under the event id the other process's poll records it under", async () => {
    const streamed: CallRecordInput[] = [];
    const stream = await wrapOpenAI(client(), { sink: (r) => streamed.push(r) }).responses.create(
      { model: "gpt-5.2", input: "Tallest mountain in Alberta?", stream: true, background: true },
      { headers },
    );
    let id = "";
    for await (const ev of stream) if ("response" in ev) id = ev.response.id;
    expect(streamed).toEqual([expect.objectContaining({ kind: "llm", request_id: id, stream: true })]);

    // Another process: an SDK of its own, which knows nothing of the stream.
    vi.resetModules();
    const elsewhere = (await import("../src/index.js")).wrapOpenAI;
    const polled: CallRecordInput[] = [];
    const poller = elsewhere(client(), { sink: (r) => polled.push(r) });
    expect((await poller.responses.retrieve(id, undefined, { headers })).status).toBe("completed");
    expect(polled).toEqual([expect.objectContaining({ kind: "llm", request_id: id })]);
    expect(polled[0]!.event_id).toBe(streamed[0]!.event_id);
  });
});
