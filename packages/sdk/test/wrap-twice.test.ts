// One client wrapped twice: with the same options, it is the same client; with others, the second wrap
// returns a copy of the client that records by those, the client still by its own: each call recorded once.

import Anthropic from "@anthropic-ai/sdk";
import type { CallRecordInput } from "@tollgate/core";
import OpenAI, { AzureOpenAI } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { wrapAnthropic, wrapOpenAI } from "../src/index.js";

let mock: MockUpstream;

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

/** A sink and the records it received. */
function recorder() {
  const records: CallRecordInput[] = [];
  return { records, sink: (r: CallRecordInput) => void records.push(r) };
}

const newOpenAI = () => new OpenAI({ apiKey: "sk-test", maxRetries: 0, baseURL: `${mock.url}/v1` });
const chat = (client: OpenAI) =>
  client.chat.completions.create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "Hi" }] });

describe("a client wrapped twice", () => {
  it("with other options (another sink, another provider): the second wrap's copy records by them, the client by its first", async () => {
    const a = recorder();
    const b = recorder();
    const client = newOpenAI();
    const first = wrapOpenAI(client, { sink: a.sink });
    const second = wrapOpenAI(client, { sink: b.sink, provider: "azure" });
    expect(first).toBe(client);
    expect(second).not.toBe(client);
    expect(second).toBeInstanceOf(OpenAI);

    await chat(first);
    expect(a.records).toHaveLength(1);
    expect(b.records).toHaveLength(0);
    await chat(second);
    expect(a.records).toHaveLength(1);
    expect(b.records).toMatchObject([{ provider: "azure", status: "ok" }]);
    // Clients made from each are wrapped as the one they came from.
    await chat(second.withOptions({ timeout: 30_000 }));
    await chat(first.withOptions({ timeout: 30_000 }));
    expect([a.records.length, b.records.length]).toEqual([2, 2]);
    expect(a.records.every((r) => r.provider === "openai")).toBe(true);
  });

  it("with the same options (or the same fields again): the client itself, each call recorded once", async () => {
    const a = recorder();
    const client = newOpenAI();
    expect(wrapOpenAI(client, { sink: a.sink })).toBe(client);
    expect(wrapOpenAI(client, { sink: a.sink })).toBe(client);
    await chat(client);
    expect(a.records).toHaveLength(1);
  });

  it("with the same options object, changed since the first wrap: other options, so a copy records by them; the client and its derived clients still by the first", async () => {
    const a = recorder();
    const b = recorder();
    const client = newOpenAI();
    const options = { sink: a.sink };
    wrapOpenAI(client, options);
    options.sink = b.sink;
    const second = wrapOpenAI(client, options);
    expect(second).not.toBe(client);
    await chat(second);
    await chat(client);
    await chat(client.withOptions({ timeout: 30_000 }));
    expect([a.records.length, b.records.length]).toEqual([2, 1]);
  });

  it("options whose fields are inherited (Object.create of the app's defaults): recorded by them, wrapped twice the client itself", async () => {
    const a = recorder();
    const client = newOpenAI();
    const defaults = { sink: a.sink };
    expect(wrapOpenAI(client, Object.create(defaults))).toBe(client);
    expect(wrapOpenAI(client, Object.create(defaults))).toBe(client);
    await chat(client);
    expect(a.records).toHaveLength(1);
  });

  it("an Anthropic client too", async () => {
    const a = recorder();
    const b = recorder();
    const client = new Anthropic({ apiKey: "sk-ant-test", maxRetries: 0, baseURL: mock.url });
    const second = wrapAnthropic(wrapAnthropic(client, { sink: a.sink }), { sink: b.sink });
    expect(second).not.toBe(client);
    const message = {
      model: "claude-sonnet-4-5",
      max_tokens: 1024,
      messages: [{ role: "user" as const, content: "Hi" }],
    };
    await second.messages.create(message);
    await client.messages.create(message);
    expect([a.records.length, b.records.length]).toEqual([1, 1]);
  });

  it("with other options, a client that makes no copy of itself (AzureOpenAI's withOptions throws): refused, said so", () => {
    const bare = { chat: { completions: { create: async () => ({}) } }, responses: {} };
    const azure = new AzureOpenAI({ apiKey: "k", endpoint: mock.url, apiVersion: "2024-10-21" });
    for (const client of [bare, azure]) {
      wrapOpenAI(client, { sink: recorder().sink });
      expect(() => wrapOpenAI(client, { sink: recorder().sink })).toThrow(
        /wrapped already, with other options/,
      );
    }
  });
});
