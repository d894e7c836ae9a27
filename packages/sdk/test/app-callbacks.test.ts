// The app's own callbacks (a record sink, estimateCost) never break the calls they are given: a call that
// one of them throws on reaches the app as it would unwrapped, and what they threw is warned.
import { runInNewContext } from "node:vm";
import type { CallRecordInput } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { type CostEstimator, traced, withAttribution, wrapOpenAI } from "../src/index.js";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(() => mock?.close());

const messages = [{ role: "user" as const, content: "What is the capital of the UK?" }];
const client = (options: Parameters<typeof wrapOpenAI>[1]) =>
  wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), options);

/** The [tollgate] warnings `fn` printed. */
async function warnedDuring(fn: () => Promise<void>): Promise<string[]> {
  const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
  try {
    await fn();
    return warn.mock.calls.map((args) => String(args[0]));
  } finally {
    warn.mockRestore();
  }
}

describe("the app's callbacks", () => {
  it("a sink that throws: every call reaches the app as unwrapped (its reply, its stream, its typed error)", async () => {
    let thrown = 0;
    const sink = () => {
      thrown++;
      throw new Error("sink down");
    };
    const openai = client({ sink });
    const warnings = await warnedDuring(async () => {
      const reply = await openai.chat.completions.create({ model: "gpt-4.1-nano", messages });
      expect(reply.usage?.total_tokens).toBeGreaterThan(0);
      const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
      let chunks = 0;
      for await (const _ of stream) chunks++;
      expect(chunks).toBeGreaterThan(1);
      const left = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
      for await (const _ of left) break;
      const failed = await openai.chat.completions
        .create({ model: "gpt-4.1-nano", messages }, { headers: { "x-mock-scenario": "server-error" } })
        .catch((e) => e);
      expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
      expect(await traced(async () => "done", { name: "step", sink })).toBe("done");
    });
    expect(thrown).toBe(5); // each was given its record
    expect(warnings).toHaveLength(1); // one per thousand
    expect(warnings[0]).toMatch(/\[tollgate\] the record sink threw \(sink down\)/);
  });

  it("an async sink whose promise rejects: warned, not an unhandled rejection", async () => {
    const openai = client({
      sink: async () => {
        throw new Error("db down");
      },
    });
    const warnings = await warnedDuring(async () => {
      await openai.chat.completions.create({ model: "gpt-4.1-nano", messages });
      await new Promise((r) => setTimeout(r, 10));
    });
    expect(warnings).toEqual([expect.stringMatching(/the record sink threw \(db down\)/)]);
  });

  it("a sink whose promise is another realm's (a vm context's) and rejects: warned, not an unhandled rejection", async () => {
    const openai = client({ sink: () => runInNewContext("Promise.reject(new Error('db down'))") });
    const warnings = await warnedDuring(async () => {
      await openai.chat.completions.create({ model: "gpt-4.1-nano", messages });
      await new Promise((r) => setTimeout(r, 10));
    });
    expect(warnings).toEqual([expect.stringMatching(/the record sink threw \(db down\)/)]);
  });

  it("an estimateCost that throws: the call reaches the app, recorded for the server to price", async () => {
    const records: CallRecordInput[] = [];
    const openai = client({
      sink: (r) => records.push(r),
      estimateCost: () => {
        throw new TypeError("no price for it");
      },
    });
    const warnings = await warnedDuring(async () => {
      const reply = await openai.chat.completions.create({ model: "gpt-4.1-nano", messages });
      expect(reply.usage?.total_tokens).toBeGreaterThan(0);
    });
    expect(records).toHaveLength(1);
    expect(records[0]!.cost_nanousd).toBeUndefined();
    expect(records[0]!.cost_source).toBeUndefined();
    expect(warnings).toEqual([expect.stringMatching(/estimateCost threw \(no price for it\)/)]);
  });

  it("an estimateCost answering what is no nano-USD (a JavaScript app's fraction, a promise): warned, left to the server", async () => {
    for (const [answer, says] of [
      [1.5, "it returned 1.5"],
      [-3n, "it returned -3"],
      [Promise.resolve(5n), "it returned [object Promise]"],
      ["12", "it returned 12"],
    ] as const) {
      const records: CallRecordInput[] = [];
      const openai = client({
        sink: (r) => records.push(r),
        estimateCost: (() => answer) as unknown as CostEstimator, // as a JavaScript app's may answer
      });
      const warnings = await warnedDuring(async () => {
        await openai.chat.completions.create({ model: "gpt-4.1-nano", messages });
      });
      expect(records[0]!.cost_nanousd, String(answer)).toBeUndefined();
      expect(records[0]!.cost_source).toBeUndefined();
      expect(warnings).toEqual([expect.stringContaining(says)]);
    }
    // A whole number of nano-USD is one.
    const records: CallRecordInput[] = [];
    const whole = client({
      sink: (r) => records.push(r),
      estimateCost: (() => 4200) as unknown as CostEstimator,
    });
    await whole.chat.completions.create({ model: "gpt-4.1-nano", messages });
    expect(records[0]).toMatchObject({ cost_nanousd: "4200", cost_source: "estimated" });
  });

  it("an estimateCost that always throws, given to a client per tenant and to each API: one warning per thousand", async () => {
    const estimateCost = () => {
      throw new TypeError("no price for it");
    };
    const warnings = await warnedDuring(async () => {
      for (let tenant = 0; tenant < 3; tenant++) {
        const openai = client({ sink: () => {}, estimateCost });
        await openai.chat.completions.create({ model: "gpt-4.1-nano", messages });
        await openai.responses.create({ model: "gpt-4.1-nano", input: "What is the capital of the UK?" });
      }
    });
    expect(warnings).toEqual([
      expect.stringMatching(/estimateCost threw \(no price for it\); ignored, 1 times/),
    ]);
  });

  it("a sink that changes its records changes only them: not the scope's later calls, nor a sibling scope's", async () => {
    const records: CallRecordInput[] = [];
    const openai = client({
      sink: (r) => {
        r.tags?.push("seen"); // enriched on its way elsewhere
        r.metadata = Object.assign(r.metadata ?? {}, { who: r.user_id ?? "nobody" });
        records.push(r);
      },
    });
    const ask = () => openai.chat.completions.create({ model: "gpt-4.1-nano", messages });
    await withAttribution({ tags: ["t"], metadata: { plan: "pro" } }, async () => {
      await ask();
      await ask();
      await Promise.all([withAttribution({ userId: "a" }, ask), withAttribution({ userId: "b" }, ask)]);
    });
    await ask(); // outside any scope, twice
    await ask();
    const inScope = { tags: ["t", "seen"] };
    const outside = { tags: ["seen"], metadata: { who: "nobody" } };
    expect(records.slice(0, 2)).toMatchObject([
      { ...inScope, metadata: { plan: "pro", who: "nobody" } },
      { ...inScope, metadata: { plan: "pro", who: "nobody" } },
    ]);
    const branches = records.slice(2, 4).sort((x, y) => String(x.user_id).localeCompare(String(y.user_id)));
    expect(branches).toMatchObject([
      { ...inScope, metadata: { plan: "pro", who: "a" } },
      { ...inScope, metadata: { plan: "pro", who: "b" } },
    ]);
    expect(records.slice(4)).toEqual([expect.objectContaining(outside), expect.objectContaining(outside)]);
  });
  it("a hosted tool's record has its own tags and metadata, as its response's record is when the sink changes it", async () => {
    const records: CallRecordInput[] = [];
    const openai = client({
      sink: (r) => {
        r.tags?.push(`seen:${r.api}`);
        r.metadata = Object.assign(r.metadata ?? {}, { [`by:${r.api}`]: true });
        records.push(r);
      },
    });
    await withAttribution({ tags: ["t"], metadata: { plan: "pro" } }, () =>
      openai.responses.create({
        model: "gpt-5-nano",
        input: "Draw a cat",
        tools: [{ type: "image_generation", model: "gpt-image-1-mini" }],
      }),
    );
    expect(records.map((r) => [r.api, r.tags, r.metadata])).toEqual([
      ["openai.responses", ["t", "seen:openai.responses"], { plan: "pro", "by:openai.responses": true }],
      ["openai.images", ["t", "seen:openai.images"], { plan: "pro", "by:openai.images": true }],
    ]);
  });
});
