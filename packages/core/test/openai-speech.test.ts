// OpenAI speech (`/v1/audio/speech`): tts-1 and tts-1-hd billed by the request's characters (rates
// genai-prices lacks), gpt-4o-mini-tts by tokens from its event stream's usage, or estimated from its text
// when it answers with the audio alone; and the worst case a budget holds for each.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  billsCharacters,
  buildCallRecord,
  extractFromSse,
  normalizeUsage,
  PricingEngine,
  speechCharacters,
  speechUsage,
  worstCaseCost,
  worstCaseUsage,
} from "../src/index.js";

const engine = new PricingEngine();
const AT = Date.parse("2026-12-01T00:00:00Z");
const price = (model: string, usage: ReturnType<typeof speechUsage>["usage"]["usage"]) =>
  engine.price({ provider: "openai", model, usage, at: AT });
const sse = readFileSync(
  new URL("./fixtures/openai-audio/speech.stream.gpt-4o-mini-tts.sse", import.meta.url),
  "utf8",
);

describe("OpenAI speech", () => {
  it("tts-1 and tts-1-hd: the request's characters (code points) at $15 and $30 per million", () => {
    const body = { model: "tts-1", input: "Hé 😀!".repeat(200), voice: "alloy" };
    expect(speechCharacters(body)).toBe(1000); // the emoji is one character, not two UTF-16 units
    for (const [model, nanos] of [
      ["tts-1", 15_000_000n],
      ["tts-1-hd", 30_000_000n],
      ["tts-1-hd-1106", 30_000_000n], // a dated snapshot
    ] as const) {
      expect(billsCharacters(engine, "openai", model, AT)).toBe(true);
      const { usage, estimated } = speechUsage(body, true);
      expect(estimated).toBe(false);
      expect(usage.usage).toMatchObject({
        input_characters: 1000,
        input_uncached_tokens: 0,
        output_tokens: 0,
      });
      const p = price(model, usage.usage);
      expect(p).toMatchObject({ priced: true, price_ref: `tollgate:openai:${model.replace("-1106", "")}` });
      expect(p.cost.total_nanousd).toBe(nanos);
      expect(p.cost.by_category.input_uncached).toBe(nanos);
      // The hold is the same exact amount: nothing about a tts-1 call is unknown before it is sent.
      const wc = worstCaseUsage("openai.speech", body, { byteLength: 2000 }, null);
      expect(worstCaseCost(engine, "openai", model, wc.usage, AT)).toEqual({
        priced: true,
        total_nanousd: nanos,
      });
      // Its usage_raw normalizes back to the same usage (ingest, a rebuild).
      expect(normalizeUsage("openai.speech", usage.usage_raw)).toEqual(usage.usage);
    }
  });

  it("gpt-4o-mini-tts streamed as events: its usage, text in and audio out, at $0.60 and $12 per million", () => {
    const u = extractFromSse("openai.speech", sse)!;
    expect(u.usage).toMatchObject({
      input_uncached_tokens: 14,
      output_tokens: 101,
      output_audio_tokens: 101,
      input_characters: 0,
    });
    expect(billsCharacters(engine, "openai", "gpt-4o-mini-tts", AT)).toBe(false);
    for (const model of ["gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15"])
      expect(price(model, u.usage).cost.total_nanousd).toBe(14n * 600n + 101n * 12_000n);
  });

  it("gpt-4o-mini-tts answered with audio alone: estimated from its text, and held above the estimate", () => {
    const body = { model: "gpt-4o-mini-tts", input: "a".repeat(4096), instructions: "b".repeat(100) };
    const { usage, estimated } = speechUsage(body, false);
    expect(estimated).toBe(true);
    // (4,096 + 100) / 4 text tokens in; 4,096 characters at 15 a second is 273 s, at 1,250 tokens a minute.
    expect(usage.usage).toMatchObject({
      input_uncached_tokens: 1049,
      output_tokens: 5689,
      output_audio_tokens: 5689,
    });
    const slow = speechUsage({ ...body, speed: 0.5 }, false).usage.usage;
    expect(slow.output_tokens).toBe(11_378);
    const estimate = price("gpt-4o-mini-tts", usage.usage).cost.total_nanousd;
    const wc = worstCaseUsage("openai.speech", body, { byteLength: 5000 }, null);
    const held = worstCaseCost(engine, "openai", "gpt-4o-mini-tts", wc.usage, AT);
    expect(held.priced).toBe(true);
    expect(held.total_nanousd).toBeGreaterThan(estimate * 2n);
  });

  it("gpt-4o-mini-tts's estimate counts all of its instructions, not the first 256 characters a record field keeps", () => {
    const body = { model: "gpt-4o-mini-tts", input: "a".repeat(100), instructions: "b".repeat(2000) };
    const { usage } = speechUsage(body, false);
    expect(usage.usage.input_uncached_tokens).toBe(Math.ceil(2100 / 4));
    expect(usage.usage_raw).toMatchObject({ characters: 100, instructions: 2000 });
  });

  it("gpt-4o-mini-tts asked for speed 4 is still held for its text at speed 1 (OpenAI: speed does not work with it)", () => {
    const body = { model: "gpt-4o-mini-tts", input: "a".repeat(4096), voice: "alloy", speed: 4 };
    // What the same text makes at an ordinary pace and speed 1: the audio a model that ignores speed makes.
    const ordinary = speechUsage({ ...body, speed: 1 }, false).usage.usage;
    const held = worstCaseUsage("openai.speech", body, { byteLength: 5000 }, null).usage;
    expect(held.output_tokens).toBeGreaterThanOrEqual(ordinary.output_tokens);
    const cost = price("gpt-4o-mini-tts", ordinary).cost.total_nanousd;
    expect(worstCaseCost(engine, "openai", "gpt-4o-mini-tts", held, AT).total_nanousd).toBeGreaterThan(cost);
    // A slower speed still lengthens the hold: its text takes twice as long (its 10 s of silences do not).
    const at = (speed: number) =>
      worstCaseUsage("openai.speech", { ...body, speed }, { byteLength: 5000 }, null).usage.output_tokens;
    const tenSeconds = (10 * 1250) / 60;
    expect(at(0.5) - tenSeconds).toBeCloseTo(2 * (at(1) - tenSeconds), -1);
  });

  it("a short text is held for at least 10 s of audio; a token estimate on a model billed by the character is unpriced, not $0", () => {
    const hi = worstCaseUsage(
      "openai.speech",
      { model: "gpt-4o-mini-tts", input: "Hi" },
      { byteLength: 50 },
      null,
    );
    expect(hi.usage.output_tokens).toBeGreaterThanOrEqual(Math.ceil((10 * 1250) / 60));
    const tokens = speechUsage({ input: "hello" }, false).usage.usage;
    expect(price("tts-1", tokens)).toMatchObject({ priced: false, price_ref: "unpriced:openai:tts-1" });
  });

  it("Azure OpenAI sells them at the same prices: tts-1 by its characters, gpt-4o-mini-tts's snapshots by tokens", () => {
    const chars = speechUsage({ input: "a".repeat(1000) }, true).usage.usage;
    const onAzure = (model: string, usage: typeof chars) =>
      engine.price({ provider: "azure", model, usage, at: AT });
    expect(onAzure("tts-1-hd", chars)).toMatchObject({ priced: true, price_ref: "tollgate:azure:tts-1-hd" });
    expect(onAzure("tts-1-hd", chars).cost.total_nanousd).toBe(30_000_000n);
    const tokens = extractFromSse("openai.speech", sse)!.usage;
    expect(onAzure("gpt-4o-mini-tts-2025-03-20", tokens).cost.total_nanousd).toBe(
      14n * 600n + 101n * 12_000n,
    );
    expect(engine.price({ provider: "anthropic", model: "tts-1", usage: chars, at: AT }).priced).toBe(false);
  });

  it("characters on a model that does not price them are not a $0 call: unpriced", () => {
    const chars = speechUsage({ input: "hello" }, true).usage.usage;
    expect(price("gpt-4o-mini-tts", chars)).toMatchObject({ priced: false });
    expect(price("tts-9", chars)).toMatchObject({ priced: false });
  });

  it("a record takes input_characters, and refuses one that is not a whole non-negative count", () => {
    const base = {
      event_id: "01900000-0000-7000-8000-0000000000c1",
      ts_start: AT,
      provider: "openai",
      model: "tts-1",
      api: "openai.speech",
      kind: "llm",
    };
    const ok = buildCallRecord({ ...base, input_characters: 2000 }, { workspaceId: "default", engine });
    expect(ok.ok && ok.record).toMatchObject({
      input_characters: 2000,
      cost_nanousd: 30_000_000n,
      priced: true,
    });
    for (const bad of [-1, 1.5, "12"]) {
      const r = buildCallRecord({ ...base, input_characters: bad }, { workspaceId: "default", engine });
      expect(r.ok).toBe(false);
      expect(!r.ok && r.errors.map((e) => e.field)).toContain("input_characters");
    }
  });
});
