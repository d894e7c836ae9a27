// A budget refusal that a smaller call would pass says how this call could reserve less: a lower output cap
// than the one it set, one where it set none, and for calls no output cap bounds (images, speech,
// transcriptions, embeddings) what does, never a max_tokens that plays no part. Through the gateway, with
// the official `openai` client (and plain fetch for the body's shape) against the local mock upstream.
import OpenAI, { toFile } from "openai";
import { beforeAll, describe, expect, it } from "vitest";
import { adminRequest } from "./helpers.js";
import type { MockUpstream } from "./mock-upstream.js";
import { type OpenAIThroughGateway, openaiThroughGateway } from "./openai-gateway.js";

let mock: MockUpstream;
let gw: OpenAIThroughGateway["gw"];
let openai: OpenAI;
openaiThroughGateway((s) => ({ mock, gw, openai } = s));

const FEATURE = { "x-tollgate-feature": "hints" };

beforeAll(async () => {
  // A millionth of a dollar: every call's worst case passes it, while nothing spent leaves room for less.
  const created = await adminRequest(gw, "POST", "/api/budgets", {
    id: "hints",
    scope: { feature: "hints" },
    window: "day",
    limit_usd: "0.000001",
  });
  expect(created.status).toBe(201);
});

/** The refusal `call` raises: a budget_exceeded RateLimitError, nothing sent upstream. Its message. */
async function refusal(call: Promise<unknown>): Promise<string> {
  const sent = mock.requests.length;
  const e = await call.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(OpenAI.RateLimitError);
  expect((e as InstanceType<typeof OpenAI.RateLimitError>).code).toBe("budget_exceeded");
  expect(mock.requests.length).toBe(sent);
  return (e as Error).message;
}

const chat = (body: Record<string, unknown>) =>
  openai.chat.completions.create(
    { model: "gpt-4o", messages: [{ role: "user", content: "hi" }], ...body },
    { headers: FEATURE },
  );

describe("budget refusals: how to reserve less", () => {
  it("a chat call without an output cap: set one (the fields its API reads)", async () => {
    const message = await refusal(chat({}));
    expect(message).toContain(
      "Set max_completion_tokens or max_tokens to reserve less: without one, a call reserves its model's whole context window as output.",
    );
  });

  it("a chat call that set one: its current cap, which a lower one undercuts; n choices each reserve it", async () => {
    const message = await refusal(chat({ max_tokens: 4096 }));
    expect(message).toContain(
      "This call's max_tokens of 4096 is reserved whole as output: a lower one reserves less.",
    );
    expect(message).not.toContain("without one");
    const choices = await refusal(chat({ max_completion_tokens: 500, n: 3 }));
    expect(choices).toContain("This call's max_completion_tokens of 500 is reserved whole as output");
    expect(choices).toContain("Each of its 3 choices (n) reserves as much.");
  });

  it("a Responses call names its own field, max_output_tokens", async () => {
    const without = await refusal(
      openai.responses.create({ model: "gpt-4o", input: "hi" }, { headers: FEATURE }),
    );
    expect(without).toContain("Set max_output_tokens to reserve less: without one,");
    const capped = await refusal(
      openai.responses.create(
        { model: "gpt-4o", input: "hi", max_output_tokens: 2000 },
        { headers: FEATURE },
      ),
    );
    expect(capped).toContain("This call's max_output_tokens of 2000 is reserved whole as output");
  });

  it("an image call: fewer or smaller images, not max_tokens", async () => {
    const message = await refusal(
      openai.images.generate({ model: "gpt-image-1", prompt: "a lighthouse", n: 2 }, { headers: FEATURE }),
    );
    expect(message).toContain("fewer (n) or smaller (size) images");
    expect(message).not.toMatch(/lower max_tokens|Set max_tokens|context window/);
  });

  it("a speech call: a shorter text", async () => {
    const message = await refusal(
      openai.audio.speech.create(
        { model: "gpt-4o-mini-tts", voice: "alloy", input: "Hello there, a longer sentence to read out." },
        { headers: FEATURE },
      ),
    );
    expect(message).toContain("a shorter text reserves less");
    expect(message).not.toMatch(/lower max_tokens|Set max_tokens/);
  });

  it("a transcription: nothing in the request but its file's size", async () => {
    const file = await toFile(Buffer.from("RIFF\x24\x00\x00\x00WAVEfmt ", "latin1"), "a.wav", {
      type: "audio/wav",
    });
    const message = await refusal(
      openai.audio.transcriptions.create({ model: "gpt-4o-mini-transcribe", file }, { headers: FEATURE }),
    );
    expect(message).toContain("no max_tokens bounds it");
    expect(message).not.toMatch(/lower max_tokens|Set max_tokens/);
  });

  it("an embeddings call: less input; the error body keeps its shape", async () => {
    // Plain fetch: the body as it comes, in OpenAI's error shape (DESIGN.md "Errors").
    const res = await fetch(`${gw.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-test", ...FEATURE },
      body: JSON.stringify({ model: "text-embedding-3-small", input: "x".repeat(2000) }),
    });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    const { error } = (await res.json()) as { error: Record<string, unknown> };
    expect(error).toMatchObject({
      type: "rate_limit_error",
      code: "budget_exceeded",
      budget: { id: "hints" },
    });
    expect(error.message).toContain("An embeddings call reserves its input's bytes as tokens");
    expect(error.message).not.toMatch(/lower max_tokens|Set max_tokens/);
  });
});
