// A run's call held back by its calls in flight is told how it could hold less as a budget's refusal is
// told how to reserve less (reserveLessHint), where that is true: under a cost ceiling by what decides its
// worst case, under a token ceiling only where its hold counts output its request decides (tokenHold).
import { describe, expect, it } from "vitest";
import { type Api, type HeldCeiling, runHeldMessage, worstCaseUsage } from "../src/index.js";

const COST: HeldCeiling = { ceiling: "cost_nanousd", used: "0", held: "20000000", limit: "10000000" };
const TOKENS: HeldCeiling = { ceiling: "total_tokens", used: "0", held: "3000", limit: "1000" };
const HOLD = { cost_nanousd: 5_000_000n, total_tokens: 600 };

/** What follows the call's own hold in the message: its hint, or "" for none. */
const hintOf = (held: HeldCeiling, api: Api, body: Record<string, unknown>) => {
  const worstCase = worstCaseUsage(api, body, { byteLength: 100 }, 128_000);
  const message = runHeldMessage("r-1", "bot", held, HOLD, { api, body, worstCase });
  return message.split(/\(this call would hold [^)]*\)/)[1];
};

describe("runHeldMessage: how the call could hold less", () => {
  it("under a cost ceiling, by what decides the call's worst case: no max_tokens for an image, speech or embeddings call", () => {
    expect(hintOf(COST, "openai.images", { prompt: "x", n: 2 })).toContain(
      "fewer (n) or smaller (size) images",
    );
    expect(hintOf(COST, "openai.speech", { input: "Hello." })).toContain("a shorter text reserves less");
    expect(hintOf(COST, "openai.embeddings", { input: "x" })).toContain("less input a call reserves less");
    expect(hintOf(COST, "openai.chat", {})).toBe(
      ". Set max_completion_tokens or max_tokens to reserve less: without one, a call reserves its model's whole context window as output.",
    );
  });

  it("under a token ceiling, only where the output its request decides is held", () => {
    expect(hintOf(TOKENS, "openai.chat", { max_tokens: 500 })).toContain(
      "This call's max_tokens of 500 is reserved whole as output",
    );
    expect(hintOf(TOKENS, "openai.images", { prompt: "x" })).toContain("fewer (n) or smaller (size) images");
    // Held without output: a cap would add to the hold; an embeddings call holds a quarter of its bytes.
    for (const [api, body] of [
      ["openai.chat", {}],
      ["openai.transcriptions", {}],
      ["openai.embeddings", { input: "x" }],
    ] as const)
      expect(hintOf(TOKENS, api, body)).toBe("");
  });

  it("nothing where the call is not known (the SDK's guard of a call it does not see)", () => {
    expect(runHeldMessage("r-1", null, COST, HOLD, null)).toMatch(/\(this call would hold \$0\.005\)$/);
  });
});
