// Background submissions the gateway forgets: it remembers those still running, 10,000 at most (2 here).
// One pushed out by newer ones is found by no poll here any more, so nothing here would turn its holds into
// its spend: they go then, nothing spent, and the poll that finds its response finished later counts its
// cost once, to its budget and its agent run (it used to count it on top of holds kept the hour). A response
// found finished leaves its room; a background stream still relayed keeps its holds until it ends. In memory
// and on Redis. A gateway (and a Redis) of its own per case: a response is recorded, and claimed, once
// under the id its fixture gives it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RedisLimitStore } from "../src/limits/redis-store.js";
import { runHoldKeys } from "../src/limits/run-holds.js";
import { adminRequest, gatewayRecords, type Json, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { startRedis } from "./redis-server.js";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

const FEATURE = "researching";
/** A budget roomy enough that Redis grants leases on it (a call under it alone is then admitted locally). */
const LEASED = "leased";
const RUN = "forgotten-run";
/** A submission that holds its worst case ($0.40 and its input) while its response runs. */
const RESEARCH = { model: "gpt-5", input: "Research caching", background: true, max_output_tokens: 40_000 };
// A fixture is one response (its id): each submission of a case answers with one of its own.
const SUBMITTED = "openai/responses.gpt-5.cached-reasoning.json";
const SUBMITTED_TOO = "openai/responses.gpt-5.6-sol.cache-write.json";
const STREAMED = "openai/responses.stream.gpt-5.reasoning.sse";
/** Newer submissions, under no limit. */
const NEWER = ["openai/responses.gpt-4o.cached.json", "openai/responses.gpt-5.6-sol.cache-read.json"];

let cases = 0;

/**
 * A gateway that remembers 2 background submissions, with a $10/day budget on FEATURE and an agent type
 * with a cost ceiling (so a call of RUN holds its worst case on the run too), known from its start: on
 * Redis, a budget added while running counts calls live only from a grace period on.
 */
async function forgetfulGateway(limits: "memory" | "redis") {
  const redis = limits === "redis" ? await startRedis() : null;
  const dir = mkdtempSync(join(tmpdir(), "tollgate-forgotten-"));
  const limitsPath = join(dir, "limits.yaml");
  writeFileSync(
    limitsPath,
    [
      "budgets:",
      `  - { id: ${FEATURE}, scope: { feature: ${FEATURE} }, window: day, limit_usd: "10" }`,
      `  - { id: ${LEASED}, scope: { feature: ${LEASED} }, window: day, limit_usd: "100000" }`,
      "agents:",
      '  researcher: { max_cost_usd: "10" }',
    ].join("\n"),
  );
  const gw = await startTestGateway(
    mock.url,
    { backgroundRemembered: 2 },
    { limitsPath, redisUrl: redis?.url ?? null },
  );
  const openai = new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const budget = async (id = FEATURE) => (await adminRequest(gw, "GET", `/api/budgets/${id}`)).json as Json;
  const records = async (id: string) => (await gatewayRecords(gw.runtime)).filter((r) => r.request_id === id);
  const mockCase = { "x-mock-case": `forgotten-${limits}-${++cases}` };
  const ofRun = {
    ...mockCase,
    "x-tollgate-feature": FEATURE,
    "x-tollgate-agent-run-id": RUN,
    "x-tollgate-agent-type": "researcher",
  };
  /** What the run's calls in flight hold of its cost ceiling. */
  const runHeld = async () => {
    const hold = { key: runHoldKeys(`r:${RUN}`).cost, slots: [], steps: [], ttlMs: null };
    const [status] = await gw.runtime.guard.store.buckets("default", [hold], Date.now());
    return status!.reserved;
  };
  const held = async () => ({
    budget: (await budget()).reserved_usd !== "0.00",
    run: (await runHeld()) > 0n,
  });
  /** A RESEARCH submission (answered with `fixture`), made with `headers`: its response's id. */
  const submit = async (fixture: string, headers: Record<string, string> = ofRun) =>
    (await openai.responses.create(RESEARCH, { headers: { ...headers, "x-mock-fixture": fixture } })).id;
  /** Submissions made since, of `fixtures`, under no limit: their ids. */
  const submitNewer = async (fixtures: string[]) => {
    const ids: string[] = [];
    for (const f of fixtures) ids.push(await submit(f, mockCase));
    return ids;
  };
  /** The llm records of responses `ids`. */
  const llmRecords = async (...ids: string[]) =>
    (await Promise.all(ids.map(records))).flat().filter((r) => r.kind === "llm");
  /** Polled (with `headers`) until found finished. */
  const pollFinished = (id: string, headers: Record<string, string> = ofRun) =>
    vi.waitFor(
      async () =>
        expect((await openai.responses.retrieve(id, undefined, { headers })).status).toBe("completed"),
      { timeout: 5_000, interval: 20 },
    );
  /** Recorded once: its cost is the budget's spend and the run's, and nothing is held any more. */
  const countedOnce = async (id: string) => {
    await vi.waitFor(async () => expect(await llmRecords(id)).not.toEqual([]), {
      timeout: 5_000,
      interval: 20,
    });
    await sleep(300); // a second record or charge, were there one, would be in by now
    const llm = await llmRecords(id);
    expect(llm).toHaveLength(1);
    const cost = String(llm[0]!.cost_nanousd);
    expect(await budget()).toMatchObject({ spend_nanousd: cost, reserved_usd: "0.00" });
    const run = (await adminRequest(gw, "GET", `/api/runs/${RUN}`)).json;
    expect(run.usage).toMatchObject({ cost_nanousd: cost, llm_calls: 1 });
    expect(await runHeld()).toBe(0n);
  };
  const stop = async () => {
    await gw.stop();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    gw,
    openai,
    budget,
    mockCase,
    ofRun,
    held,
    submit,
    submitNewer,
    llmRecords,
    pollFinished,
    countedOnce,
    stop,
  };
}

describe.each(["memory", "redis"] as const)(
  "gateway (limits %s): a background submission forgotten",
  (limits) => {
    it("pushed out by newer ones still running, lets its holds go then: the poll that finds it finished counts it once", async () => {
      const f = await forgetfulGateway(limits);
      try {
        const submitted = await f.submit(SUBMITTED);
        expect(await f.held()).toEqual({ budget: true, run: true });
        await f.submitNewer(NEWER.slice(0, 1));
        await sleep(50);
        expect(await f.held()).toEqual({ budget: true, run: true }); // still remembered
        await f.submitNewer(NEWER.slice(1));
        await vi.waitFor(async () => expect(await f.held()).toEqual({ budget: false, run: false }), {
          timeout: 2_000,
          interval: 20,
        });
        await f.pollFinished(submitted);
        await f.countedOnce(submitted);
      } finally {
        await f.stop();
      }
    });

    it("is one still running: a response found finished leaves its room, pushing none out", async () => {
      const f = await forgetfulGateway(limits);
      try {
        const submitted = await f.submit(SUBMITTED);
        const [done] = await f.submitNewer(NEWER.slice(0, 1));
        await f.pollFinished(done!, f.mockCase);
        await vi.waitFor(async () => expect(await f.llmRecords(done!)).not.toEqual([]), {
          timeout: 5_000,
          interval: 20,
        });
        await f.submitNewer(NEWER.slice(1));
        await sleep(200);
        expect(await f.held()).toEqual({ budget: true, run: true }); // two still running: remembered
        await f.pollFinished(submitted);
        await f.countedOnce(submitted);
      } finally {
        await f.stop();
      }
    });

    for (const end of [
      "finishes",
      "finishes after a poll found its response finished",
      "is cut short",
    ] as const)
      it(`is a background stream still relayed: it keeps its holds until it ends; it ${end}: counted once`, async () => {
        const f = await forgetfulGateway(limits);
        try {
          const stream = await f.openai.responses.create(
            { model: "gpt-5", input: "go", stream: true, background: true },
            { headers: { ...f.ofRun, "x-mock-fixture": STREAMED, "x-mock-chunk-delay-ms": "100" } },
          );
          const events = stream[Symbol.asyncIterator]();
          const id = ((await events.next()).value as { response: { id: string } }).response.id;
          await f.submitNewer(NEWER);
          await sleep(50);
          expect(await f.held()).toEqual({ budget: true, run: true });
          if (end === "is cut short") {
            await events.return?.();
            await sleep(300);
            expect(await f.held()).toEqual({ budget: true, run: true }); // it runs on upstream
            await f.pollFinished(id);
          } else {
            if (end !== "finishes") await f.pollFinished(id);
            while (!(await events.next()).done) {}
          }
          await f.countedOnce(id);
        } finally {
          await f.stop();
        }
      });
  },
);

describe("gateway (limits redis): a background submission admitted from a lease, forgotten", () => {
  it("lets its lease go back: the poll that finds it finished charges its cost once", async () => {
    const f = await forgetfulGateway("redis");
    try {
      const store = f.gw.runtime.guard.store as RedisLimitStore;
      const leasing = { ...f.mockCase, "x-tollgate-feature": LEASED };
      const first = await f.submit(SUBMITTED, leasing); // admitted by Redis, which grants a lease with it
      const trips = store.admitRoundTrips;
      const leased = await f.submit(SUBMITTED_TOO, leasing);
      expect(store.admitRoundTrips).toBe(trips); // admitted from the lease
      await f.submitNewer(NEWER);
      // Both forgotten: their holds go, and the lease, unused past its 2 s, goes back whole.
      await vi.waitFor(async () => expect((await f.budget(LEASED)).reserved_usd).toBe("0.00"), {
        timeout: 5_000,
        interval: 50,
      });
      for (const id of [first, leased]) await f.pollFinished(id, leasing);
      await vi.waitFor(async () => expect(await f.llmRecords(first, leased)).toHaveLength(2), {
        timeout: 5_000,
        interval: 20,
      });
      await sleep(300);
      const llm = await f.llmRecords(first, leased);
      expect(llm).toHaveLength(2);
      expect(await f.budget(LEASED)).toMatchObject({
        spend_nanousd: String(llm[0]!.cost_nanousd + llm[1]!.cost_nanousd),
        reserved_usd: "0.00",
      });
    } finally {
      await f.stop();
    }
  });
});
