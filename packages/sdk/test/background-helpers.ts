// Shared by the SDK's background-response test files: each file runs in a process of its own, since the
// SDK records a response once per process, under the id the mock's fixture gives it.
import {
  type CallRecordInput,
  extractFromResponse,
  extractFromSse,
  PricingEngine,
  servedAsOf,
} from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, expect } from "vitest";
import { fixture, type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { wrapOpenAI } from "../src/index.js";

export type StreamEvent = { type: string; sequence_number: number; response?: { id: string } };

/**
 * A fixture-replaying mock for the file, a wrapped client and an unwrapped one against it, and the records
 * the wrapped one sends (read them once the hooks ran). `fetch`: how the clients reach the mock (one that
 * changes what it answers, say).
 */
export function clientsAgainstMock({ fetch }: { fetch?: typeof globalThis.fetch } = {}): {
  wrapped: () => OpenAI;
  plain: () => OpenAI;
  sent: CallRecordInput[];
} {
  let mock: MockUpstream;
  let wrapped: OpenAI;
  let plain: OpenAI;
  const sent: CallRecordInput[] = [];
  beforeAll(async () => {
    mock = await startMockUpstream({ chunkDelayMs: 1 });
    const opts = { apiKey: "sk-test", maxRetries: 0, baseURL: `${mock.url}/v1`, fetch };
    wrapped = wrapOpenAI(new OpenAI(opts), { sink: (r) => sent.push(r) });
    plain = new OpenAI(opts);
  });
  afterAll(async () => {
    await mock?.close();
  });
  return { wrapped: () => wrapped, plain: () => plain, sent };
}

/**
 * A fixture-replaying mock for the file, and a maker of clients wrapped against it, each following its
 * background responses after `followBackgroundMs` (0: no polls of its own), with the records it sends.
 */
export function followingClientsAgainstMock(): (followBackgroundMs: number) => {
  client: OpenAI;
  sent: CallRecordInput[];
} {
  let mock: MockUpstream;
  beforeAll(async () => {
    mock = await startMockUpstream({ chunkDelayMs: 1 });
  });
  afterAll(async () => {
    await mock?.close();
  });
  return (followBackgroundMs) => {
    const sent: CallRecordInput[] = [];
    const opts = { apiKey: "sk-test", maxRetries: 0, baseURL: `${mock.url}/v1` };
    return { client: wrapOpenAI(new OpenAI(opts), { sink: (r) => sent.push(r), followBackgroundMs }), sent };
  };
}

/** A client's own poll after this long: it follows its responses, but the app's poll comes first. */
export const LATER = 60_000;

/** A run's holds once nothing is held. */
export const NOTHING_HELD = { cost_nanousd: 0n, total_tokens: 0 };

/**
 * Reaches the mock, but the final event of a gpt-5 reasoning stream (openai/responses.stream.gpt-5.reasoning.sse)
 * reports usage without its output tokens, which the SDK cannot read; polls answer as sent.
 */
export const unreadableAtTheEnd: typeof fetch = async (url, init) => {
  const res = await fetch(url, init);
  if (init?.method !== "POST") return res;
  const text = (await res.text()).replace(/"usage":\{"input_tokens":53,.*?"total_tokens":522\}/, () =>
    JSON.stringify({ usage: { input_tokens: 53 } }).slice(1, -1),
  );
  return new Response(text, { status: res.status, headers: res.headers });
};

/** A background stream the mock cuts half-way (reset-mid-stream): the events the client got before the break. */
export async function cutBackgroundStream(
  client: OpenAI,
  model: string,
  headers: Record<string, string>,
): Promise<StreamEvent[]> {
  const seen: StreamEvent[] = [];
  const stream = await client.responses.create(
    { model, input: "Tallest mountain in Alberta?", stream: true, background: true },
    { headers: { ...headers, "x-mock-scenario": "reset-mid-stream" } },
  );
  await expect(
    (async () => {
      for await (const ev of stream) seen.push(ev as StreamEvent);
    })(),
  ).rejects.toThrow();
  return seen;
}

/** What a fixture's finished response (a reply, or a stream) costs now, at the tier it was served on. */
export function fixtureResponseCost(rel: string): bigint {
  const response = rel.endsWith(".sse")
    ? extractFromSse("openai.responses", fixture(rel))!
    : extractFromResponse("openai.responses", JSON.parse(fixture(rel)));
  return new PricingEngine().price({
    provider: "openai",
    model: response.model!,
    usage: response.usage,
    serviceTier: response.service_tier,
    servedAs: servedAsOf(response.usage_raw),
    at: Date.now(),
  }).cost.total_nanousd;
}
