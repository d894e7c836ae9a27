// A background submission admitted from a Redis lease (far from its cap, without a round trip) holds its
// worst case while its response runs, which may be an hour: on its own, not as the lease's. The lease, whose
// other room it used to keep reserved until then (64 worst cases in `reserved`, refused to other replicas),
// goes back on schedule; the response is still held until found finished, and charged once. A gateway and
// a Redis of their own per case: a response is recorded, and claimed, once under the id its fixture gives it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { LEASE_CALLS } from "../src/limits/redis-leases.js";
import type { RedisLimitStore } from "../src/limits/redis-store.js";
import { adminRequest, gatewayRecords, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { startRedis } from "./redis-server.js";

const FEATURE = "leased";
/** A background stream that holds its worst case (its bytes, its max_output_tokens) while it runs. */
const STREAMED = {
  model: "gpt-5",
  input: "go",
  stream: true,
  background: true,
  max_output_tokens: 40_000,
} as const;
const { stream: _, ...unstreamed } = STREAMED;
/** A background submission not streamed, of the same size as STREAMED: the same worst case. */
const SUBMISSION = {
  ...unstreamed,
  input: unstreamed.input.padEnd(
    unstreamed.input.length + JSON.stringify(STREAMED).length - JSON.stringify(unstreamed).length,
    ".",
  ),
};
const STREAM_FIXTURE = "openai/responses.stream.gpt-5.reasoning.sse";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

/**
 * A gateway on a Redis of its own, with a budget on FEATURE roomy enough that Redis grants leases on it;
 * `first` submitted through it (admitted by Redis, which grants a lease with it), and its worst case.
 */
async function leasingGateway(firstFixture: string) {
  const redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), "tollgate-leased-"));
  // Known from the start: on Redis, a budget added while running counts calls live only after a grace period.
  const limitsPath = join(dir, "limits.yaml");
  writeFileSync(
    limitsPath,
    `budgets:\n  - { id: ${FEATURE}, scope: { feature: ${FEATURE} }, window: day, limit_usd: "100000" }\n`,
  );
  const gw = await startTestGateway(mock.url, {}, { limitsPath, redisUrl: redis.url });
  const store = gw.runtime.guard.store as RedisLimitStore;
  const openai = new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const headers = { "x-mock-case": "leased", "x-tollgate-feature": FEATURE };
  const budget = async () => (await adminRequest(gw, "GET", `/api/budgets/${FEATURE}`)).json;
  const reserved = async () => BigInt((await budget()).reserved_nanousd);
  const first = (
    await openai.responses.create(SUBMISSION, { headers: { ...headers, "x-mock-fixture": firstFixture } })
  ).id;
  const worstCase = (await reserved()) / (LEASE_CALLS + 1n);
  expect(await reserved()).toBe((LEASE_CALLS + 1n) * worstCase); // its own, and its lease's
  /** Until what the budget holds comes to `worstCases` of them (the lease back, a response recorded). */
  const holds = (worstCases: bigint) =>
    vi.waitFor(async () => expect(await reserved()).toBe(worstCases * worstCase), {
      timeout: 5_000,
      interval: 50,
    });
  const pollFinished = (id: string) =>
    vi.waitFor(
      async () =>
        expect((await openai.responses.retrieve(id, undefined, { headers })).status).toBe("completed"),
      { timeout: 5_000, interval: 20 },
    );
  /** Both found finished: each recorded once, their costs the spend, and nothing held any more. */
  const chargedOnce = async (ids: string[]) => {
    const llm = async () =>
      (await gatewayRecords(gw.runtime)).filter((r) => r.kind === "llm" && ids.includes(r.request_id!));
    await vi.waitFor(async () => expect(await llm()).toHaveLength(ids.length), {
      timeout: 5_000,
      interval: 20,
    });
    await sleep(300); // a second record or charge, were there one, would be in by now
    const records = await llm();
    expect(records).toHaveLength(ids.length);
    expect(await budget()).toMatchObject({
      spend_nanousd: String(records.reduce((sum, r) => sum + r.cost_nanousd, 0n)),
      reserved_nanousd: "0",
    });
  };
  const stop = async () => {
    await gw.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { gw, store, openai, headers, budget, first, holds, pollFinished, chargedOnce, stop };
}

describe("gateway (limits redis): a background response admitted from a lease", () => {
  it("submitted: it holds its worst case on its own, the lease goes back on schedule; polled, charged once", async () => {
    const g = await leasingGateway("openai/responses.gpt-5.cached-reasoning.json");
    try {
      const trips = g.store.admitRoundTrips;
      const fixture = "openai/responses.gpt-5.6-sol.cache-write.json";
      const leased = (
        await g.openai.responses.create(SUBMISSION, { headers: { ...g.headers, "x-mock-fixture": fixture } })
      ).id;
      expect(g.store.admitRoundTrips).toBe(trips); // admitted from the lease
      // Unused past its 2 s, the lease goes back: what stays reserved is the two responses still running.
      await g.holds(2n);
      await g.pollFinished(leased);
      await g.holds(1n);
      await g.pollFinished(g.first);
      await g.chargedOnce([g.first, leased]);
    } finally {
      await g.stop();
    }
  });

  it("streamed and cut short: it runs on upstream, holding its worst case on its own; polled, charged once", async () => {
    const g = await leasingGateway("openai/responses.gpt-5.6-sol.cache-read.json");
    try {
      const trips = g.store.admitRoundTrips;
      const stream = await g.openai.responses.create(STREAMED, {
        headers: { ...g.headers, "x-mock-fixture": STREAM_FIXTURE, "x-mock-chunk-delay-ms": "100" },
      });
      expect(g.store.admitRoundTrips).toBe(trips); // admitted from the lease
      const events = stream[Symbol.asyncIterator]();
      const id = ((await events.next()).value as { response: { id: string } }).response.id;
      await events.return?.();
      await g.holds(2n); // the lease back, the two responses still running
      await g.pollFinished(id);
      await g.holds(1n);
      await g.pollFinished(g.first);
      await g.chargedOnce([g.first, id]);
    } finally {
      await g.stop();
    }
  });

  it("streamed, found finished by a poll while it streams: charged once by its event id, a charge of it elsewhere none the more", async () => {
    const g = await leasingGateway("openai/responses.gpt-5.6-sol.cache-read.json");
    try {
      const stream = await g.openai.responses.create(STREAMED, {
        headers: { ...g.headers, "x-mock-fixture": STREAM_FIXTURE, "x-mock-chunk-delay-ms": "100" },
      });
      const events = stream[Symbol.asyncIterator]();
      const id = ((await events.next()).value as { response: { id: string } }).response.id;
      // Still streaming: the poll records it, its stream's hold (in the lease) becomes its spend.
      await g.pollFinished(id);
      const recorded = async () =>
        (await gatewayRecords(g.gw.runtime)).find((r) => r.kind === "llm" && r.request_id === id);
      const spent = async () => (await g.budget()).spend_nanousd;
      await vi.waitFor(async () => expect(await spent()).toBe(String((await recorded())?.cost_nanousd)), {
        timeout: 5_000,
        interval: 20,
      });
      // Recorded again by a replica whose store lookup timed out: its record's charge counts nothing more.
      const record = (await recorded())!;
      await g.gw.runtime.guard.observe([record], { countCalls: false, recurs: true });
      expect(await spent()).toBe(String(record.cost_nanousd));
      await events.return?.();
      await g.holds(1n); // the lease back, nothing of the stream's hold left
      await g.pollFinished(g.first);
      await g.chargedOnce([g.first, id]);
    } finally {
      await g.stop();
    }
  });
});
