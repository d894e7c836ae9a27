// A streamed call whose upstream refuses the stream_options the wrapper added is sent again as the app made
// it: one request to the app, so the re-send goes on with what is left of it (timeout and retries), as
// openai-node would go on with one request, not with a fresh timeout and fresh retries, and counts its attempts
// to the upstream on from the refused one (X-Stainless-Retry-Count), not from 0 again.

import type { CallRecordInput } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect } from "../../server/test/helpers.js";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { wrapOpenAI } from "../src/index.js";

let mock: MockUpstream;
const sent: CallRecordInput[] = [];
const sink = (r: CallRecordInput) => void sent.push(r);

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

/**
 * A wrapped client of an upstream that refuses stream_options (an api-version before 2024-09-01-preview,
 * each test its own: an upstream is remembered once the app's request was taken there).
 */
const refusingClient = (apiVersion: string, timeout: number, maxRetries: number) =>
  wrapOpenAI(
    new OpenAI({
      apiKey: "sk-test",
      baseURL: `${mock.url}/v1`,
      defaultQuery: { "api-version": apiVersion },
      timeout,
      maxRetries,
    }),
    { sink },
  );

const params = {
  model: "gpt-4o-mini",
  messages: [{ role: "user" as const, content: "Hi" }],
  stream: true as const,
};
const requestsOf = (id: string) => mock.requests.filter((r) => r.headers["x-test-case"] === id);
/** The attempt count each request of the case told the upstream, as the SDK names it. */
const retryCountsOf = (id: string) => requestsOf(id).map((r) => r.headers["x-stainless-retry-count"]);

/** Streams the call through `client`, its error if it failed; one record of it either way. */
async function streamed(client: OpenAI, headers: Record<string, string>): Promise<unknown> {
  const before = sent.length;
  const outcome = await client.chat.completions
    .create(params, { headers })
    .then((s) => collect(s))
    .catch((e: unknown) => e);
  await expect.poll(() => sent.length).toBe(before + 1);
  return outcome;
}

describe("the app's own request sent again after a refusal of stream_options", () => {
  it("goes with what is left of its attempt's timeout: the refusal took most of it", async () => {
    const client = refusingClient("2024-06-01", 3000, 0);
    // Each answer (the refusal too) comes 2.1 s after its request: the re-send has ~0.9 s left (room for a
    // loaded machine to send it), and times out; with a fresh timeout (3 s) its answer would come in time.
    const err = await streamed(client, {
      "x-test-case": "resend-timeout",
      "x-mock-headers-delay-ms": "2100",
    });
    expect(err).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    expect(requestsOf("resend-timeout").map((r) => r.body.stream_options)).toEqual([
      { include_usage: true },
      undefined,
    ]);
    expect(retryCountsOf("resend-timeout")).toEqual(["0", "1"]);
    expect(sent.at(-1)).toMatchObject({ status: "error" });
  });

  it("goes with the retries the request had left: those made before the refusal are spent", async () => {
    // Each request (the re-send's, another body, too) goes unanswered the first time it is seen.
    const client = refusingClient("2024-02-01", 1000, 1);
    const err = await streamed(client, { "x-test-case": "resend-retries", "x-mock-scenario": "hang-once" });
    expect(err).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    // Timed out, retried and refused; the app's own request then timed out with no retry left.
    expect(requestsOf("resend-retries").map((r) => r.body.stream_options)).toEqual([
      { include_usage: true },
      { include_usage: true },
      undefined,
    ]);
    // The re-send is the request's third attempt: it tells the upstream so, as a retry of it would.
    expect(retryCountsOf("resend-retries")).toEqual(["0", "1", "2"]);
    expect(sent.at(-1)).toMatchObject({ status: "error" });
  });

  it("a request with retries left retries the re-send, and its answer reaches the app", async () => {
    const client = refusingClient("2024-03-01-preview", 1000, 2);
    const chunks = await streamed(client, {
      "x-test-case": "resend-retried",
      "x-mock-scenario": "hang-once",
    });
    expect(Array.isArray(chunks)).toBe(true);
    // Timed out, retried and refused; the re-send timed out and was retried (the one retry it had left).
    expect(requestsOf("resend-retried").map((r) => r.body.stream_options)).toEqual([
      { include_usage: true },
      { include_usage: true },
      undefined,
      undefined,
    ]);
    // Every attempt counts on from the one before, the re-send's retry included.
    expect(retryCountsOf("resend-retried")).toEqual(["0", "1", "2", "3"]);
    expect(sent.at(-1)).toMatchObject({ status: "ok", stream: true });
  });
});
