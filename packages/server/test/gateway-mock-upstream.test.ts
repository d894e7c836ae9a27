// The mock upstream itself, driven directly by the official SDKs: it must look like the real APIs
// (the gateway tests compare "through the gateway" against "direct to the mock").
import Anthropic from "@anthropic-ai/sdk";
import { extractFromSse, parseSse } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest } from "./helpers.js";
import {
  FX,
  fixture,
  type MockUpstream,
  sseEvents,
  startMockUpstream,
  withoutUsage,
} from "./mock-upstream.js";

let mock: MockUpstream;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
  openai = new OpenAI({ apiKey: "sk-test-123", baseURL: `${mock.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: "sk-ant-test", baseURL: mock.url, maxRetries: 0 });
});

afterAll(async () => {
  await mock?.close();
});

const sseJson = (text: string) =>
  parseSse(text)
    .filter((e) => e.data !== "[DONE]")
    .map((e) => JSON.parse(e.data));

describe("mock upstream (direct)", () => {
  it("answers chat, Responses, embeddings and messages bodies with the fixtures verbatim", async () => {
    const chat = await openai.chat.completions.create({
      model: "gpt-4.1-nano",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(chat).toEqual(JSON.parse(fixture(FX.chat)));
    const resp = await openai.responses.create({ model: "gpt-4o", input: "hi" });
    expect(resp.usage).toEqual(JSON.parse(fixture(FX.responses)).usage);
    const emb = await openai.embeddings.create({ model: "text-embedding-3-small", input: "hi" });
    expect(emb.usage).toEqual({ prompt_tokens: 4, total_tokens: 4 });
    expect(Array.isArray(emb.data[0]!.embedding)).toBe(true); // the SDK decoded the base64 vector
    const msg = await anthropic.messages.create({
      model: "claude-sonnet-4-5",
      max_tokens: 100,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(msg).toEqual(JSON.parse(fixture(FX.messages)));
    const last = mock.requests.at(-1)!;
    expect(last.path).toBe("/v1/messages");
    // @anthropic-ai/sdk 1.x sends the key as a bearer token (older versions used x-api-key)
    expect(last.headers.authorization ?? `Bearer ${last.headers["x-api-key"]}`).toBe("Bearer sk-ant-test");
  });

  it("streams chat with include_usage exactly as captured, and without usage when not asked", async () => {
    const withUsage = [];
    for await (const c of await openai.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
    }))
      withUsage.push(c);
    expect(withUsage).toEqual(sseJson(fixture(FX.chatStream)));
    expect(withUsage.at(-1)!.usage).toMatchObject({ prompt_tokens: 53, completion_tokens: 15 });

    const plain = [];
    for await (const c of await openai.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    }))
      plain.push(c);
    expect(plain).toHaveLength(withUsage.length - 1);
    for (const c of plain) expect(c).not.toHaveProperty("usage");
    expect(plain).toEqual(sseJson(withoutUsage(fixture(FX.chatStream))));
    expect(extractFromSse("openai.chat", withoutUsage(fixture(FX.chatStream)))).toBeNull();
  });

  it("streams Responses and Anthropic messages event by event", async () => {
    const events = [];
    for await (const e of await openai.responses.create({ model: "gpt-5", input: "hi", stream: true }))
      events.push(e);
    expect(events).toEqual(sseJson(fixture(FX.responsesStream)));

    const anth = [];
    for await (const e of await anthropic.messages.create({
      model: "claude-sonnet-4-20250514",
      max_tokens: 100,
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    }))
      anth.push(e);
    // the SDK swallows `ping` events
    expect(anth).toEqual(sseJson(fixture(FX.messagesStream)).filter((e) => e.type !== "ping"));

    // .chunks.jsonl captures are framed as SSE
    const raw = await rawRequest(`${mock.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "claude-sonnet-4-5", stream: true, max_tokens: 5, messages: [] }),
    });
    expect(raw.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(sseJson(raw.body)).toEqual(
      fixture(FX.messagesStreamChunks)
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l)),
    );
  });

  it("splits SSE into events losslessly", () => {
    for (const rel of [FX.chatStream, FX.responsesStream, FX.messagesStream, FX.messagesStreamTools]) {
      const text = fixture(rel);
      const evs = sseEvents(text);
      expect(evs.join("")).toBe(text);
      expect(evs.length).toBeGreaterThan(5);
    }
  });

  it("plays the failure scenarios", async () => {
    const err429 = await openai.chat.completions
      .create({ model: "gpt-4o-mini", messages: [] }, { headers: { "x-mock-scenario": "rate-limit" } })
      .catch((e) => e);
    expect(err429).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err429.headers.get("retry-after")).toBe("1");

    const body = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "once" }] };
    const once = { headers: { "x-mock-scenario": "rate-limit-once" } };
    await expect(openai.chat.completions.create(body, once)).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    await expect(openai.chat.completions.create(body, once)).resolves.toMatchObject({
      object: "chat.completion",
    });

    await expect(
      openai.chat.completions.create(
        { model: "gpt-4o-mini", messages: [] },
        { headers: { "x-mock-scenario": "server-error" } },
      ),
    ).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    await expect(
      anthropic.messages.create(
        { model: "claude-sonnet-4-5", max_tokens: 1, messages: [] },
        { headers: { "x-mock-scenario": "server-error" } },
      ),
    ).rejects.toBeInstanceOf(Anthropic.InternalServerError);

    const reset = async () => {
      const s = await openai.chat.completions.create(
        { model: "gpt-4o-mini", messages: [], stream: true },
        { headers: { "x-mock-scenario": "reset-mid-stream" } },
      );
      const seen = [];
      for await (const c of s) seen.push(c);
      return seen;
    };
    await expect(reset()).rejects.toThrow();

    const hung = await openai.chat.completions
      .create(
        { model: "gpt-4o-mini", messages: [] },
        { headers: { "x-mock-scenario": "hang" }, timeout: 200 },
      )
      .catch((e) => e);
    expect(hung).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
  });
});
