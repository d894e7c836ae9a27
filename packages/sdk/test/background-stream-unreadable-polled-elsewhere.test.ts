// A background stream read to its end whose final event carries usage the SDK cannot read, then polled by
// another process (whose SDK never saw the stream), which reads it: the stream is recorded as its submission
// (kind=other), and the poll's record is the response's one llm record in the store, its cost. The stream
// used to write an llm record of its own too (usage_unreadable): the store held two model calls for the one
// response. A file of its own: the SDK records a response once per process, under the id its fixture gives it.

import type { CallRecordInput } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createKey, openTestRuntime, postEvents } from "../../server/test/helpers.js";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { wrapOpenAI } from "../src/index.js";
import { unreadableAtTheEnd } from "./background-helpers.js";

const REL = "openai/responses.stream.gpt-5.reasoning.sse";
const headers = { "x-mock-case": "sdk-unreadable-polled-elsewhere", "x-mock-fixture": REL };

let mock: MockUpstream;
let rt: Awaited<ReturnType<typeof openTestRuntime>>;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
  rt = await openTestRuntime();
});
afterAll(async () => {
  await mock?.close();
  await rt?.close();
});

const client = (fetch?: typeof globalThis.fetch) =>
  new OpenAI({ apiKey: "sk-test", maxRetries: 0, baseURL: `${mock.url}/v1`, fetch });

describe("SDK: a background stream read to its end, its usage unreadable, then polled by another process", () => {
  it("leaves the response's one llm record to the poll, with its usage: its own is its submission's", async () => {
    const streamed: CallRecordInput[] = [];
    const stream = await wrapOpenAI(client(unreadableAtTheEnd), {
      sink: (r) => streamed.push(r),
    }).responses.create(
      { model: "gpt-5", input: "Research caching", stream: true, background: true },
      { headers },
    );
    let id = "";
    for await (const ev of stream) if (ev.type === "response.created") id = ev.response.id;
    expect(streamed).toEqual([
      expect.objectContaining({ kind: "other", error_type: "usage_unreadable", request_id: id }),
    ]);

    // Another process: an SDK of its own, which knows nothing of the stream, and reads the usage.
    vi.resetModules();
    const elsewhere = (await import("../src/index.js")).wrapOpenAI;
    const polled: CallRecordInput[] = [];
    const poller = elsewhere(client(), { sink: (r) => polled.push(r) });
    expect((await poller.responses.retrieve(id, undefined, { headers })).status).toBe("completed");
    expect(polled).toEqual([expect.objectContaining({ kind: "llm", request_id: id, output_tokens: 469 })]);

    // Both reach the store, the stream's first (it ended before the poll): one model call, at its usage.
    const key = (await createKey(rt.app, rt.rootToken, "default", "ingest")).json.key;
    for (const batch of [streamed, polled]) expect((await postEvents(rt.app, key, batch)).status).toBe(200);
    const stored = await rt.store.query({ workspaceId: "default", where: { request_id: id }, limit: 10 });
    expect(stored.filter((r) => r.kind === "llm")).toEqual([
      expect.objectContaining({ priced: true, output_tokens: 469 }),
    ]);
  });
});
