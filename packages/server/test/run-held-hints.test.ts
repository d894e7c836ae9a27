// A call of an agent run that its calls in flight hold back is told how it could hold less, as a budget
// refusal is told how to reserve less (core's reserveLessHint): by what decides its worst case, never a
// max_tokens that plays no part (an image or speech call), and under a token ceiling only where the output
// its request decides is held. Through the gateway with no wait for room, the official `openai` client
// (and plain fetch for the body's shape) against the local mock upstream.
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminRequest, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 0 });
  // A call held back is refused at once, not after waiting for room.
  gw = await startTestGateway(mock.url, { runHoldWaitMs: 0 });
  const agents = { "hint-cost-bot": { max_cost_usd: "0.01" }, "hint-token-bot": { max_total_tokens: 1000 } };
  for (const [type, ceilings] of Object.entries(agents))
    expect((await adminRequest(gw, "PUT", `/api/agents/${type}`, ceilings)).status).toBe(201);
});
afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

const runHeaders = (run: string, type: string) => ({
  "x-tollgate-agent-run-id": run,
  "x-tollgate-agent-type": type,
});
const client = (headers: Record<string, string>) =>
  new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0, defaultHeaders: headers });

/**
 * Run `run` (of agent type `type`) with a call in flight for 1 s: o3-mini, max_completion_tokens 3000
 * (~$0.0133 and ~3,020 tokens held, past either ceiling by itself), sent upstream once the run holds it.
 * Returns its end, for the test to await.
 */
async function callInFlight(run: string, type: string): Promise<{ end: Promise<unknown> }> {
  const tag = `${run}-holder`;
  const holder = client({
    ...runHeaders(run, type),
    "x-test-case": tag,
    "x-mock-headers-delay-ms": "1000",
  }).chat.completions.create({
    model: "o3-mini",
    max_completion_tokens: 3000,
    messages: [{ role: "user", content: "hold" }],
  });
  while (!mock.requests.some((r) => r.headers["x-test-case"] === tag)) await sleep(10);
  return { end: holder };
}

/** The refusal `call` raises: a rate_limited RateLimitError of the run, nothing sent upstream. Its message. */
async function heldBack(call: Promise<unknown>): Promise<string> {
  const sent = mock.requests.length;
  const e = await call.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(OpenAI.RateLimitError);
  expect((e as InstanceType<typeof OpenAI.RateLimitError>).code).toBe("rate_limited");
  expect(mock.requests.length).toBe(sent);
  return (e as Error).message;
}

describe("a run's call held back by its calls in flight: how it could hold less", () => {
  it("under a cost ceiling, an image call: fewer or smaller images, not max_tokens", async () => {
    const oa = client(runHeaders("hint-image-1", "hint-cost-bot"));
    const holder = await callInFlight("hint-image-1", "hint-cost-bot");
    const message = await heldBack(
      oa.images.generate({ model: "gpt-image-1", prompt: "a lighthouse", n: 2 }),
    );
    expect(message).toContain("held by its calls in flight reach its cost_nanousd ceiling $0.01");
    expect(message).toContain("fewer (n) or smaller (size) images");
    expect(message).not.toMatch(/max_tokens to hold less|Set max_tokens/);
    await holder.end;
  });

  it("under a cost ceiling, a speech call: a shorter text; a chat call: the cap it set", async () => {
    const oa = client(runHeaders("hint-speech-1", "hint-cost-bot"));
    const holder = await callInFlight("hint-speech-1", "hint-cost-bot");
    const speech = await heldBack(
      oa.audio.speech.create({ model: "gpt-4o-mini-tts", voice: "alloy", input: "Hello there." }),
    );
    expect(speech).toContain("a shorter text reserves less");
    expect(speech).not.toMatch(/max_tokens to hold less|Set max_tokens/);
    const chat = await heldBack(
      oa.chat.completions.create({
        model: "o3-mini",
        max_completion_tokens: 500,
        messages: [{ role: "user", content: "b" }],
      }),
    );
    expect(chat).toContain("This call's max_completion_tokens of 500 is reserved whole as output");
    await holder.end;
  });

  it("under a token ceiling: the cap a chat call set, but no cap for one holding no output (a cap would add to its hold)", async () => {
    const oa = client(runHeaders("hint-tokens-1", "hint-token-bot"));
    const holder = await callInFlight("hint-tokens-1", "hint-token-bot");
    const chat = (body: Record<string, unknown>) =>
      heldBack(
        oa.chat.completions.create({ model: "o3-mini", messages: [{ role: "user", content: "b" }], ...body }),
      );
    const capped = await chat({ max_completion_tokens: 500 });
    expect(capped).toContain("held by its calls in flight reach its total_tokens ceiling 1000 tokens");
    expect(capped).toContain("This call's max_completion_tokens of 500 is reserved whole as output");
    const uncapped = await chat({});
    expect(uncapped).toMatch(/\(this call would hold \d+ tokens\)$/);
    await holder.end;
  });

  it("the error body keeps its shape: OpenAI's error with the run's figures", async () => {
    const headers = runHeaders("hint-body-1", "hint-cost-bot");
    const holder = await callInFlight("hint-body-1", "hint-cost-bot");
    const res = await fetch(`${gw.url}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-test", ...headers },
      body: JSON.stringify({ model: "gpt-image-1", prompt: "a lighthouse" }),
    });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("1");
    const { error } = (await res.json()) as { error: Record<string, unknown> };
    expect(error).toMatchObject({
      type: "rate_limit_error",
      code: "rate_limited",
      agent_run: { id: "hint-body-1", agent_type: "hint-cost-bot", ceiling: "cost_nanousd", used: "0" },
    });
    expect(error.message).toContain("fewer (n) or smaller (size) images");
    await holder.end;
  });
});
