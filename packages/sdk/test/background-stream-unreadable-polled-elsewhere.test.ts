// A background stream read to its end whose final event carries usage the SDK cannot read, then polled by
// another process (whose SDK never saw the stream), which reads it: the store must keep the poll's record,
// the response's cost. A file of its own: the SDK records a response once per process, under the id its
// fixture gives it.

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
  it("leaves the poll's record, with the response's usage, to the store: its own, of unknown cost, takes none of its event id", async () => {
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
      expect.objectContaining({ kind: "llm", error_type: "usage_unreadable", request_id: id }),
    ]);

    // Another process: an SDK of its own, which knows nothing of the stream, and reads the usage.
    vi.resetModules();
    const elsewhere = (await import("../src/index.js")).wrapOpenAI;
    const polled: CallRecordInput[] = [];
    const poller = elsewhere(client(), { sink: (r) => polled.push(r) });
    expect((await poller.responses.retrieve(id, undefined, { headers })).status).toBe("completed");
    expect(polled).toEqual([expect.objectContaining({ kind: "llm", request_id: id, output_tokens: 469 })]);

    // Both reach the store, the stream's first (it ended before the poll): the response's usage is kept.
    const key = (await createKey(rt.app, rt.rootToken, "default", "ingest")).json.key;
    for (const batch of [streamed, polled]) expect((await postEvents(rt.app, key, batch)).status).toBe(200);
    const stored = await rt.store.query({ workspaceId: "default", where: { request_id: id }, limit: 10 });
    expect(stored.filter((r) => r.priced).map((r) => r.output_tokens)).toEqual([469]);
  });
});
