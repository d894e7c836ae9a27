import { describe, expect, it } from "vitest";
import {
  admitsNext,
  BudgetSchema,
  bucketId,
  bucketValues,
  compileBudget,
  crossedCeiling,
  emptyRunUsage,
  emptyUsage,
  IMAGE_ALLOWANCE_TOKENS,
  levelOf,
  limitFor,
  PriceBook,
  PricingEngine,
  parseWindow,
  rateRetryAfterMs,
  scopeMatches,
  slidingCount,
  speechWorstCase,
  stateOfLevel,
  thresholds,
  tokenCount,
  tokenHold,
  usdToNano,
  windowSlots,
  worstCaseCost,
  worstCaseUsage,
} from "../src/index.js";

const at = (iso: string) => Date.parse(iso);

describe("budget windows", () => {
  it("calendar windows in a time zone: start, reset and slot id follow local midnight", () => {
    const day = windowSlots(parseWindow("day", "America/New_York")!, at("2026-03-08T03:30:00Z"));
    // 22:30 on March 7 in New York (EST, UTC-5)
    expect(day).toMatchObject({
      slots: ["d2026-03-07"],
      start: at("2026-03-07T05:00:00Z"),
      resetAt: at("2026-03-08T05:00:00Z"),
    });
    // the DST day is 23 hours long: midnight to midnight across the switch
    const dst = windowSlots(parseWindow("day", "America/New_York")!, at("2026-03-08T12:00:00Z"));
    expect(dst).toMatchObject({
      slots: ["d2026-03-08"],
      start: at("2026-03-08T05:00:00Z"),
      resetAt: at("2026-03-09T04:00:00Z"),
    });
    const week = windowSlots(parseWindow("week", "Europe/Berlin")!, at("2026-12-06T22:59:00Z")); // Sunday 23:59 Berlin
    expect(week).toMatchObject({
      slots: ["w2026-11-30"],
      start: at("2026-11-29T23:00:00Z"),
      resetAt: at("2026-12-06T23:00:00Z"),
    });
    const month = windowSlots(parseWindow("month")!, at("2026-12-31T23:59:59Z"));
    expect(month).toMatchObject({
      slots: ["m2026-12"],
      start: at("2026-12-01T00:00:00Z"),
      resetAt: at("2027-01-01T00:00:00Z"),
    });
  });

  it("a day whose midnight a DST gap skips starts where the gap ends (Havana, Santiago, the Azores)", () => {
    // Havana springs forward at 00:00 on 2024-03-10 (CST, UTC-5, to CDT, UTC-4): that day's first instant
    // is 01:00 CDT, 05:00Z. 04:00Z-05:00Z is still 23:00-24:00 on March 9.
    const havana = parseWindow("day", "America/Havana")!;
    expect(windowSlots(havana, at("2024-03-10T04:30:00Z"))).toMatchObject({
      slots: ["d2024-03-09"],
      start: at("2024-03-09T05:00:00Z"),
      resetAt: at("2024-03-10T05:00:00Z"), // was 04:00Z: a reset an hour early, already past at 04:30Z
    });
    expect(windowSlots(havana, at("2024-03-10T05:30:00Z"))).toMatchObject({
      slots: ["d2024-03-10"],
      start: at("2024-03-10T05:00:00Z"), // was 04:00Z: March 9's last hour counted in March 10
    });
    // Every instant lies in its window, across a year of these zones' switches (and of ordinary ones).
    for (const tz of [
      "America/Havana",
      "America/Santiago",
      "America/Asuncion",
      "Atlantic/Azores",
      "Europe/Berlin",
    ])
      for (const kind of ["day", "month"]) {
        const spec = parseWindow(kind, tz)!;
        for (let t = at("2024-01-01T00:00:00Z"); t < at("2025-01-01T00:00:00Z"); t += 60 * 60_000) {
          const w = windowSlots(spec, t);
          if (!(w.start <= t && t < w.resetAt!))
            expect({ tz, kind, t: new Date(t).toISOString(), w }).toBeNull();
        }
      }
  });

  it("rolling windows are whole hours; lifetime never resets; bad windows are refused", () => {
    const spec = parseWindow("3h")!;
    const w = windowSlots(spec, at("2026-12-01T10:15:00Z"));
    const h = Math.floor(at("2026-12-01T10:00:00Z") / 3_600_000);
    expect(w).toMatchObject({
      slots: [`h${h - 2}`, `h${h - 1}`, `h${h}`],
      start: at("2026-12-01T08:00:00Z"),
      resetAt: at("2026-12-01T11:00:00Z"),
    });
    // cached until the slot ends, then recomputed
    expect(windowSlots(spec, at("2026-12-01T10:59:59Z"))).toBe(w);
    expect(windowSlots(spec, at("2026-12-01T11:00:00Z")).slots.at(-1)).toBe(`h${h + 1}`);
    expect(windowSlots(parseWindow("lifetime")!, Date.now())).toMatchObject({
      slots: ["all"],
      resetAt: null,
    });
    for (const bad of ["fortnight", "0h", "169h", "1.5h", ""]) expect(parseWindow(bad)).toBeNull();
  });
});

describe("budgets", () => {
  const budget = compileBudget(
    BudgetSchema.parse({
      id: "per-customer",
      scope: { customer_id: "*", feature: "chat" },
      window: "day",
      limit_usd: "1.00",
      warn_at: [0.8, 0.5, 0.8],
      overrides: [{ when: { customer_id: "acme" }, limit_usd: "500" }],
    }),
  );

  it("scope: fixed values must match, '*' splits into one bucket per value (missing counts as empty)", () => {
    expect(scopeMatches(budget.scope, { customer_id: "x", feature: "chat" })).toBe(true);
    expect(scopeMatches(budget.scope, { customer_id: "x", feature: "search" })).toBe(false);
    expect(scopeMatches(budget.scope, { feature: "chat" })).toBe(true);
    expect(bucketValues(budget.scope, { feature: "chat" })).toEqual([""]);
    expect(bucketId(["a|b", "c d"])).toBe("a%7Cb|c%20d");
    expect(scopeMatches({ tag: "beta" }, { tags: ["beta", "x"] })).toBe(true);
    expect(scopeMatches({ tag: "beta" }, { tags: [] })).toBe(false);
  });

  it("overrides pick a bucket's limit; thresholds are exact integer fractions of it", () => {
    expect(limitFor(budget, { customer_id: "acme" })).toBe(usdToNano("500"));
    expect(limitFor(budget, { customer_id: "other" })).toBe(usdToNano("1.00"));
    const steps = thresholds(budget.limit, budget.warnAt);
    expect(steps).toEqual([500_000_000n, 800_000_000n, 1_000_000_000n]);
    expect(
      [0n, 499_999_999n, 500_000_000n, 999_999_999n, 1_000_000_000n].map((s) =>
        stateOfLevel(levelOf(s, steps), 3),
      ),
    ).toEqual(["ok", "ok", "warning", "warning", "exceeded"]);
  });

  it("validation names every bad field", () => {
    const res = BudgetSchema.safeParse({
      id: "x",
      window: "day",
      limit_usd: "0",
      action: "throttle",
      overrides: [{ when: { user_id: "u" }, limit_usd: "2" }],
    });
    expect(res.success).toBe(false);
    const fields = res.error!.issues.map((i) => i.path.join("."));
    expect(fields).toEqual(expect.arrayContaining(["limit_usd", "throttle_rpm", "overrides.0.when.user_id"]));
    expect(BudgetSchema.safeParse({ id: "x", window: "day", limit_usd: "9000000.01" }).success).toBe(false);
    expect(
      BudgetSchema.safeParse({ id: "x", window: "day", limit_usd: "1", timezone: "Mars/Olympus" }).success,
    ).toBe(false);
  });
});

describe("rate math", () => {
  it("sliding minute: the previous minute counts for the share of it still in the window", () => {
    expect(slidingCount(100, 10, 0)).toBe(110);
    expect(slidingCount(100, 10, 30_000)).toBe(60);
    expect(slidingCount(100, 10, 59_999)).toBe(10);
  });

  it("a refusal's retry-after is when the estimate has room again, past the minute's end if need be", () => {
    // 7,580 tokens counted this minute against 100/min, 57 s into it: the estimate is still 7,580 as the
    // next minute starts, and has room 59.22 s into it (was: 3 s, the rest of this minute)
    expect(rateRetryAfterMs(57_000, 0, 7_580, 99)).toBe(3_000 + 59_220);
    // the previous minute's share alone was in the way: it shrinks within this one
    expect(rateRetryAfterMs(30_000, 100, 10, 59)).toBe(60);
    // what the estimate says at each instant, with nothing more counted, agrees
    const estimate = (at: number, t: number, prev: number, cur: number) => {
      const minutes = Math.floor(t / 60_000) - Math.floor(at / 60_000);
      return minutes === 0 ? slidingCount(prev, cur, t) : minutes === 1 ? slidingCount(cur, 0, t) : 0;
    };
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 300; i++) {
      const [prev, cur, allowed, at] = [rnd(200), rnd(200), rnd(150), 60_000 + rnd(60_000)];
      const wait = rateRetryAfterMs(at, prev, cur, allowed);
      expect(estimate(at, at + wait, prev, cur) <= allowed, `${[prev, cur, allowed, at]}`).toBe(true);
      if (wait > 0)
        expect(estimate(at, at + wait - 1, prev, cur) > allowed, `${[prev, cur, allowed, at]}`).toBe(true);
    }
  });
});

describe("token holds (tokens per minute)", () => {
  const raw = (body: object) => ({ byteLength: Buffer.byteLength(JSON.stringify(body)) });
  it("a call holds its input at ~4 bytes a token plus the output cap it sets, and no output without one", () => {
    const capped = {
      model: "gpt-4.1-nano",
      max_tokens: 500,
      n: 2,
      messages: [{ role: "user", content: "x".repeat(400) }],
    };
    const wc = worstCaseUsage("openai.chat", capped, raw(capped), 1_047_576);
    expect(tokenHold(wc)).toBe(Math.ceil(raw(capped).byteLength / 4) + 1_000);
    const uncapped = { model: "gpt-4.1-nano", messages: [{ role: "user", content: "x".repeat(400) }] };
    // the context window (a million tokens) is what a budget holds; a rate limit holds none of it
    expect(tokenHold(worstCaseUsage("openai.chat", uncapped, raw(uncapped), 1_047_576))).toBe(
      Math.ceil(raw(uncapped).byteLength / 4),
    );
    const image = {
      model: "gpt-4.1",
      max_tokens: 10,
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://x/y.png" } }] }],
    };
    expect(tokenHold(worstCaseUsage("openai.chat", image, raw(image), null))).toBeGreaterThanOrEqual(
      IMAGE_ALLOWANCE_TOKENS / 4 + 10,
    );
  });

  it("at settle a call's tokens replace its hold in its admission minute while that minute is in the window", () => {
    const admitted = at("2026-12-01T12:00:50Z");
    const minute = Math.floor(admitted / 60_000);
    const held = { tokens: 600, at: admitted };
    // same minute, and the next one (the admission minute is the previous one): corrected where it was held
    expect(tokenCount(250, held, admitted + 5_000)).toEqual({ minute, add: -350 });
    expect(tokenCount(900, held, admitted + 60_000)).toEqual({ minute, add: 300 });
    // two minutes on the hold has left the window: only what it used beyond it counts, now
    expect(tokenCount(900, held, admitted + 120_000)).toEqual({ minute: minute + 2, add: 300 });
    expect(tokenCount(250, held, admitted + 120_000)).toEqual({ minute: minute + 2, add: 0 });
    // nothing held (an ingested call): all of it, now
    expect(tokenCount(250, undefined, admitted)).toEqual({ minute, add: 250 });
    expect(tokenCount(250, { tokens: 0, at: admitted - 600_000 }, admitted)).toEqual({ minute, add: 250 });
  });
});

describe("agent-run ceilings", () => {
  it("cost and tokens are used up at the ceiling; calls may reach it; the next call is checked first", () => {
    const u = { ...emptyRunUsage(0), cost_nanousd: 999n, llm_calls: 3 };
    expect(crossedCeiling(u, { cost_nanousd: 1000n, llm_calls: 3 }, 10)).toBeNull();
    expect(crossedCeiling({ ...u, cost_nanousd: 1000n }, { cost_nanousd: 1000n }, 10)).toMatchObject({
      ceiling: "cost_nanousd",
      value: "1000",
    });
    expect(admitsNext(u, { llm_calls: 3 }, "llm", 1, 10)).toMatchObject({
      ceiling: "llm_calls",
      value: "4",
      limit: "3",
    });
    expect(admitsNext(u, { llm_calls: 3 }, "tool", 1, 10)).toBeNull();
    expect(admitsNext(u, { span_depth: 2 }, "tool", 3, 10)).toMatchObject({ ceiling: "span_depth" });
    expect(crossedCeiling(u, { wall_time_ms: 60_000 }, 60_000)).toMatchObject({
      ceiling: "wall_time_ms",
      value: "60000",
    });
  });
});

describe("worst-case estimate", () => {
  const engine = new PricingEngine();
  const raw = (body: object) => Buffer.from(JSON.stringify(body));

  it("a model's rates in force are kept through a stream of other models (the least recently used go, not all at once)", () => {
    const looked = new Map<string, number>();
    class Counting extends PricingEngine {
      override price(req: Parameters<PricingEngine["price"]>[0]) {
        looked.set(req.model, (looked.get(req.model) ?? 0) + 1);
        return super.price(req);
      }
    }
    const counting = new Counting();
    const usage = { ...emptyUsage(), output_tokens: 100 };
    const hold = (model: string) => worstCaseCost(counting, "openai", model, usage, Date.UTC(2026, 0, 1));
    const held = hold("gpt-4o");
    // One and a half times the 10,000 models kept, the one in use among them.
    for (let i = 0; i < 15_000; i++) {
      hold(`made-up-${i}`);
      if (i % 1_000 === 0) expect(hold("gpt-4o")).toEqual(held);
    }
    expect(looked.get("gpt-4o")).toBe(1);
    // Bounded all the same: the first made-up model has gone, and is looked up again.
    hold("made-up-0");
    expect(looked.get("made-up-0")).toBe(2);
  });

  it("input is bounded by the request's bytes; output by its cap × choices", () => {
    const body = {
      model: "gpt-4o",
      n: 3,
      max_completion_tokens: 100,
      messages: [{ role: "user", content: "héllo wörld" }],
    };
    const wc = worstCaseUsage("openai.chat", body, raw(body), 128_000);
    expect(wc.usage.input_uncached_tokens).toBe(raw(body).byteLength);
    expect(wc.usage.output_tokens).toBe(300);
    expect(wc.outputFrom).toBe("request");
  });

  it("every answer a request has made and billed is held: Gemini's candidateCount, legacy completions' best_of", () => {
    // Gemini bills every candidate's tokens (candidatesTokenCount), each up to maxOutputTokens.
    const gemini = { generationConfig: { maxOutputTokens: 1000, candidateCount: 4 } };
    expect(worstCaseUsage("google.generate_content", gemini, raw(gemini), null).usage.output_tokens).toBe(
      4000,
    );
    // best_of completions are made server-side and billed, the best n of them returned (best_of ≥ n).
    const completion = { prompt: "x", max_tokens: 100, best_of: 5, n: 2 };
    expect(worstCaseUsage("openai.completions", completion, raw(completion), null).usage.output_tokens).toBe(
      500,
    );
    // Neither field counts where its API has none: a chat call's answers are its n.
    const chat = { max_tokens: 100, best_of: 5, candidateCount: 4, n: 2 };
    expect(worstCaseUsage("openai.chat", chat, raw(chat), null).usage.output_tokens).toBe(200);
  });

  it("a cap or a count is read only where its API reads it: one in another API's settings holds nothing back", () => {
    // An OpenAI-compatible upstream that ignores fields it does not know (vLLM's) writes up to the window.
    const chat = { generationConfig: { max_tokens: 1 }, inferenceConfig: { max_completion_tokens: 1 } };
    expect(worstCaseUsage("openai.chat", chat, raw(chat), 128_000)).toMatchObject({
      outputFrom: "context_window",
      maxOutput: 128_000,
    });
    const gemini = { maxOutputTokens: 1, inferenceConfig: { maxOutputTokens: 1 } };
    expect(worstCaseUsage("google.generate_content", gemini, raw(gemini), 1_000_000).maxOutput).toBe(
      1_000_000,
    );
    const bedrock = { maxTokens: 1, generationConfig: { maxTokens: 1 } };
    expect(worstCaseUsage("bedrock.converse", bedrock, raw(bedrock), 200_000).maxOutput).toBe(200_000);
  });

  it("image parts are taken out of the byte bound and get a fixed allowance each", () => {
    const image = { type: "image_url", image_url: { url: `data:image/png;base64,${"A".repeat(50_000)}` } };
    const body = {
      model: "gpt-4o",
      max_tokens: 10,
      messages: [{ role: "user", content: [{ type: "text", text: "what is it?" }, image] }],
    };
    const wc = worstCaseUsage("openai.chat", body, raw(body), null);
    expect(wc.usage.input_uncached_tokens).toBe(
      raw(body).byteLength - JSON.stringify(image).length + IMAGE_ALLOWANCE_TOKENS,
    );
  });

  it("inline image parts (Gemini, either spelling) and Anthropic image blocks are found too", () => {
    const data = "B".repeat(40_000);
    const gemini = { inlineData: { mimeType: "image/jpeg", data } };
    const snake = { inline_data: { mime_type: "image/webp", data } };
    const body = {
      contents: [{ role: "user", parts: [{ text: "compare" }, gemini, snake] }],
      generationConfig: { maxOutputTokens: 20 },
    };
    const wc = worstCaseUsage("google.generate_content", body, raw(body), null);
    expect(wc.usage.input_uncached_tokens).toBe(
      raw(body).byteLength -
        JSON.stringify(gemini).length -
        JSON.stringify(snake).length +
        2 * IMAGE_ALLOWANCE_TOKENS,
    );
    const block = { type: "image", source: { type: "base64", media_type: "image/png", data } };
    const msg = { max_tokens: 5, messages: [{ role: "user", content: [block] }] };
    expect(worstCaseUsage("anthropic.messages", msg, raw(msg), null).usage.input_uncached_tokens).toBe(
      raw(msg).byteLength - JSON.stringify(block).length + IMAGE_ALLOWANCE_TOKENS,
    );
    // An inline part that is not an image (audio) keeps its bytes in the bound.
    const audio = { contents: [{ parts: [{ inlineData: { mimeType: "audio/wav", data } }] }] };
    expect(
      worstCaseUsage("google.generate_content", audio, raw(audio), null).usage.input_uncached_tokens,
    ).toBe(raw(audio).byteLength);
  });

  it("without an output cap: the whole context window, else the default", () => {
    const body = { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] };
    const wc = worstCaseUsage("openai.chat", body, raw(body), 128_000);
    expect(wc).toMatchObject({ outputFrom: "context_window", maxOutput: 128_000 });
    expect(worstCaseUsage("openai.chat", body, raw(body), null).outputFrom).toBe("default");
    expect(worstCaseUsage("openai.completions", { prompt: "x" }, raw({ prompt: "x" }), null).maxOutput).toBe(
      16,
    );
    expect(worstCaseUsage("anthropic.messages", { max_tokens: 77 }, raw({}), null).maxOutput).toBe(77);
    expect(
      worstCaseUsage("google.generate_content", { generationConfig: { maxOutputTokens: 55 } }, raw({}), null)
        .maxOutput,
    ).toBe(55);
  });

  it("the input is priced at the dearest input rate (cache writes cost more than input on some models)", () => {
    const usage = { ...emptyUsage(), input_uncached_tokens: 100_000 };
    const now = Date.now();
    // 100k input tokens (below the long-context tiers). gpt-5.6-sol: input $4/M, cache writes $5/M
    expect(worstCaseCost(engine, "openai", "gpt-5.6-sol", usage, now).total_nanousd).toBe(usdToNano("0.5"));
    // Claude Sonnet 4.5: input $3/M, 5-minute writes $3.75/M, 1-hour writes $6/M
    expect(worstCaseCost(engine, "anthropic", "claude-sonnet-4-5", usage, now).total_nanousd).toBe(
      usdToNano("0.6"),
    );
    // gpt-4o-mini has no write rate: plain input, $0.15/M
    expect(worstCaseCost(engine, "openai", "gpt-4o-mini", usage, now).total_nanousd).toBe(usdToNano("0.015"));
    expect(worstCaseCost(engine, "openai", "no-such-model", usage, now).priced).toBe(false);
  });

  it("a price-book entry without a rate for some held tokens holds the call as unpriced, as the engine prices it", () => {
    const book = new PricingEngine(
      PriceBook.parse({
        name: "partial",
        version: 1,
        models: [
          { provider: "acme", model: "in-only", prices: { input_mtok: "1" } },
          { provider: "acme", model: "voice-1", prices: { input_mchars: "12" } },
        ],
      }),
    );
    const now = Date.now();
    const held = { ...emptyUsage(), input_uncached_tokens: 1_000, output_tokens: 500 };
    // Its output has no rate: the call will be unpriced, so the hold is (was: priced, output at $0).
    expect(worstCaseCost(book, "acme", "in-only", held, now)).toEqual({ priced: false, total_nanousd: 0n });
    expect(book.price({ provider: "acme", model: "in-only", usage: held, at: now }).priced).toBe(false);
    expect(worstCaseCost(book, "acme", "in-only", { ...held, output_tokens: 0 }, now)).toEqual({
      priced: true,
      total_nanousd: 1_000_000n,
    });
    // A model billed by the character is held by its characters (a speech hold counts tokens too).
    const speech = speechWorstCase({ model: "voice-1", input: "hello there", voice: "alloy" });
    expect(worstCaseCost(book, "acme", "voice-1", speech, now)).toEqual({
      priced: true,
      total_nanousd: 132_000n, // 11 characters at $12 per million
    });
  });

  it("a price-book entry that prices its output only as images or audio holds an image or speech call as priced", () => {
    const book = new PricingEngine(
      PriceBook.parse({
        name: "media",
        version: 1,
        models: [
          // gpt-image-1's list prices: its output is all image tokens
          {
            provider: "openai",
            model: "gpt-image-1",
            prices: { input_mtok: "5", input_image_mtok: "10", output_image_mtok: "40" },
          },
          // gpt-4o-mini-tts: text in, audio out
          {
            provider: "openai",
            model: "gpt-4o-mini-tts",
            prices: { input_mtok: "0.6", output_audio_mtok: "12" },
          },
        ],
      }),
    );
    const now = Date.now();
    const raw = (body: object) => ({ byteLength: Buffer.byteLength(JSON.stringify(body)) });
    const image = { model: "gpt-image-1", prompt: "a red fox", size: "1024x1024" };
    const imageHold = worstCaseUsage("openai.images", image, raw(image), null).usage;
    const imageCall = {
      ...emptyUsage(),
      input_uncached_tokens: 10,
      output_tokens: 4_160,
      output_image_tokens: 4_160,
    };
    // The engine prices the call it will make; its hold must not be refused as unpriced (`unpriced: block`).
    expect(book.price({ provider: "openai", model: "gpt-image-1", usage: imageCall, at: now }).priced).toBe(
      true,
    );
    expect(worstCaseCost(book, "openai", "gpt-image-1", imageHold, now).priced).toBe(true);
    const speech = speechWorstCase({ model: "gpt-4o-mini-tts", input: "hello there", voice: "alloy" });
    const speechCall = {
      ...emptyUsage(),
      input_uncached_tokens: 3,
      output_tokens: 100,
      output_audio_tokens: 100,
    };
    expect(
      book.price({ provider: "openai", model: "gpt-4o-mini-tts", usage: speechCall, at: now }).priced,
    ).toBe(true);
    expect(worstCaseCost(book, "openai", "gpt-4o-mini-tts", speech, now).priced).toBe(true);
  });

  it("holds the searches a request caps (Anthropic max_uses, Responses max_tool_calls) at their list price", () => {
    const now = Date.now();
    const anthropic = {
      model: "claude-sonnet-4-5",
      max_tokens: 100,
      tools: [{ type: "web_search_20250305", name: "web_search", max_uses: 5 }],
    };
    const a = worstCaseUsage("anthropic.messages", anthropic, raw(anthropic), null);
    expect(a.usage.web_search_requests).toBe(5);
    const without = worstCaseUsage("anthropic.messages", { ...anthropic, tools: [] }, raw(anthropic), null);
    const cost = (u: typeof a.usage) =>
      worstCaseCost(engine, "anthropic", "claude-sonnet-4-5", u, now).total_nanousd;
    expect(cost(a.usage) - cost(without.usage)).toBe(50_000_000n); // 5 × $10 per thousand
    const responses = {
      model: "gpt-5",
      tools: [{ type: "web_search" }, { type: "file_search" }],
      max_tool_calls: 3,
    };
    expect(
      worstCaseUsage("openai.responses", responses, raw(responses), null).usage.web_search_requests,
    ).toBe(3);
    // With web_search_preview they are held as its searches: $25 per thousand on gpt-4o, $10 on gpt-5.
    const preview = { ...responses, tools: [{ type: "web_search_preview" }] };
    const held = worstCaseUsage("openai.responses", preview, raw(preview), null).usage;
    expect(held).toMatchObject({ web_search_requests: 3, web_search_preview_requests: 3 });
    const searchCost = (model: string, u: typeof held) =>
      worstCaseCost(engine, "openai", model, u, now).total_nanousd -
      worstCaseCost(
        engine,
        "openai",
        model,
        { ...u, web_search_requests: 0, web_search_preview_requests: 0 },
        now,
      ).total_nanousd;
    expect(searchCost("gpt-4o", held)).toBe(75_000_000n);
    expect(searchCost("gpt-5", held)).toBe(30_000_000n);
    // A cap past any real one (or two tools' caps that overflow) is held at 1,000 searches, not refused as Infinity.
    const huge = { ...anthropic, tools: [anthropic.tools[0], { ...anthropic.tools[0], max_uses: 1e308 }] };
    expect(worstCaseUsage("anthropic.messages", huge, raw(huge), null).usage.web_search_requests).toBe(1_000);
    // Uncapped: nothing held for them (charged when the call settles).
    const uncapped = { ...responses, max_tool_calls: undefined };
    expect(worstCaseUsage("openai.responses", uncapped, raw(uncapped), null).usage.web_search_requests).toBe(
      0,
    );
  });

  it("holds a call at the rates of the service tier it asks for (a price book's priority, OpenAI's flex)", () => {
    const usage = { ...emptyUsage(), input_uncached_tokens: 100_000, output_tokens: 10_000 };
    const now = Date.now();
    const book = PriceBook.parse({
      name: "tiers",
      version: 1,
      tiers: [{ provider: "openai", model: "gpt-4o", tier: "priority", multiplier: "1.7" }],
    });
    const tiered = new PricingEngine(book);
    const list = worstCaseCost(tiered, "openai", "gpt-4o", usage, now).total_nanousd;
    expect(list).toBe(usdToNano("0.35")); // $2.50/M in, $10/M out
    expect(worstCaseCost(tiered, "openai", "gpt-4o", usage, now, "priority").total_nanousd).toBe(
      usdToNano("0.595"),
    );
    expect(worstCaseCost(tiered, "openai", "gpt-4o", usage, now, "flex").total_nanousd).toBe(list / 2n);
    // What the hold covers is what the call is then priced at.
    const billed = tiered.price({
      provider: "openai",
      model: "gpt-4o",
      usage,
      at: now,
      serviceTier: "priority",
    });
    expect(billed.cost.total_nanousd).toBe(usdToNano("0.595"));
  });

  it("agrees with the engine's full price of the same usage (rounded up, never below it)", () => {
    const models: [string, string][] = [
      ["openai", "gpt-4o"],
      ["openai", "gpt-5"],
      ["openai", "gpt-5.6-sol"],
      ["anthropic", "claude-sonnet-4-5"],
      ["anthropic", "claude-opus-4-1"],
      ["google", "gemini-2.5-pro"],
      ["deepseek", "deepseek-chat"],
      ["mistral", "mistral-large-latest"],
    ];
    const fields = ["input_uncached_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"] as const;
    for (const [provider, model] of models)
      for (const [input, output] of [
        [1, 0],
        [12_345, 678],
        [250_001, 9_999],
      ] as const) {
        const base = { ...emptyUsage(), input_uncached_tokens: input, output_tokens: output };
        const full = fields.map(
          (f) =>
            engine.price({
              provider,
              model,
              usage: { ...base, input_uncached_tokens: 0, [f]: input },
              at: Date.UTC(2026, 5, 1),
            }).cost.total_nanousd,
        );
        const most = full.reduce((a, b) => (b > a ? b : a));
        const fast = worstCaseCost(engine, provider, model, base, Date.UTC(2026, 5, 1)).total_nanousd;
        expect(fast >= most, `${provider}/${model} ${input}+${output}`).toBe(true);
        expect(fast - most <= 1n, `${provider}/${model} ${input}+${output}`).toBe(true);
      }
  });
});
