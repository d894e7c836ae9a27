// A budget refusal's hint of how a call could reserve less follows what decides its worst case
// (worstCaseUsage): the output cap its API reads (set, or not), the API's own default, or no cap at all.
import { describe, expect, it } from "vitest";
import { type Api, reserveLessHint, worstCaseUsage } from "../src/index.js";

const hint = (api: Api, body: Record<string, unknown> | null, contextWindow: number | null = 128_000) =>
  reserveLessHint(api, body, worstCaseUsage(api, body, { byteLength: 100 }, contextWindow));

describe("reserveLessHint", () => {
  it("names the cap a request set, in whichever object its API reads it from", () => {
    expect(hint("anthropic.messages", { max_tokens: 900 })).toBe(
      "This call's max_tokens of 900 is reserved whole as output: a lower one reserves less.",
    );
    expect(hint("google.generate_content", { generationConfig: { maxOutputTokens: 64 } })).toContain(
      "This call's maxOutputTokens of 64 is reserved",
    );
    expect(hint("bedrock.converse", { inferenceConfig: { maxTokens: 32 } })).toContain(
      "This call's maxTokens of 32 is reserved",
    );
  });

  it("without a cap: the model's whole window, else the default a model of unknown window reserves", () => {
    expect(hint("google.generate_content", {})).toBe(
      "Set maxOutputTokens to reserve less: without one, a call reserves its model's whole context window as output.",
    );
    expect(hint("openai.chat", {}, null)).toBe(
      "Set max_completion_tokens or max_tokens to reserve less: without one, a call of a model whose context window is unknown reserves 32768 output tokens.",
    );
  });

  it("a legacy completion holds the API's default of 16 tokens: its prompt is what to shorten", () => {
    expect(hint("openai.completions", { prompt: "x", n: 2 })).toBe(
      "Without max_tokens a call reserves the API's default of 16 output tokens: a shorter prompt reserves less. " +
        "Each of its 2 choices (n) reserves as much.",
    );
  });

  it("names the field that asks for more answers than one, each reserving the cap: n, best_of, candidateCount", () => {
    expect(hint("openai.chat", { max_tokens: 50, n: 3 })).toContain(
      "Each of its 3 choices (n) reserves as much.",
    );
    expect(hint("openai.completions", { max_tokens: 50, best_of: 4, n: 2 })).toContain(
      "Each of its 4 choices (best_of) reserves as much.",
    );
    expect(
      hint("google.generate_content", { generationConfig: { maxOutputTokens: 64, candidateCount: 2 } }),
    ).toBe(
      "This call's maxOutputTokens of 64 is reserved whole as output: a lower one reserves less. " +
        "Each of its 2 choices (candidateCount) reserves as much.",
    );
  });

  it("never throws on odd bodies: caps and counts of the wrong type or sign are no caps or counts", () => {
    for (const body of [
      { max_tokens: "4096", n: "3" },
      { max_tokens: null, n: 0 },
      { max_tokens: -1, n: -2, best_of: 1.5 },
      { generationConfig: null, inferenceConfig: "x" },
      { generationConfig: { maxOutputTokens: "9", candidateCount: null } },
    ])
      for (const api of [
        "openai.chat",
        "openai.completions",
        "google.generate_content",
        "bedrock.converse",
      ] as const)
        expect(hint(api, body)).not.toMatch(/choices|This call's/);
  });

  it("a realtime response: its whole window, whatever its session sets", () => {
    expect(hint("openai.realtime", null)).toContain("whole context window as output");
  });
});
