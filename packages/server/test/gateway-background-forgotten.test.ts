// Background submissions the gateway remembers: those still running, 10,000 at most (2 here), past which the
// oldest is pushed out and found by no poll here any more. A response found finished leaves its room: it
// used to keep it, so a submission still running was pushed out by newer ones that had finished, and the
// poll that found it finished later counted its cost on top of the holds it kept the hour. In memory and on
// Redis. A gateway (and a Redis) of its own per case: a response is recorded, and claimed, once under the id
// its fixture gives it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
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
const RUN = "forgotten-run";
/** A submission that holds its worst case ($0.40 and its input) while its response runs. */
const RESEARCH = { model: "gpt-5", input: "Research caching", background: true, max_output_tokens: 40_000 };
// A fixture is one response (its id): each submission of a case answers with one of its own.
const SUBMITTED = "openai/responses.gpt-5.cached-reasoning.json";
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
  const budget = async () => (await adminRequest(gw, "GET", `/api/budgets/${FEATURE}`)).json as Json;
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
  "gateway (limits %s): the background submissions remembered",
  (limits) => {
    it("are those still running: a response found finished leaves its room, pushing none out", async () => {
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
  },
);
