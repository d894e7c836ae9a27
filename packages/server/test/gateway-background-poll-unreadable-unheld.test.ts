// A background response a poll finds `completed` without usage it can read, its submission's hold held by
// no replica the poll goes through: pushed out of this gateway's memory (past the submissions it remembers),
// or submitted through another replica. It ran, so it is recorded all the same, an ok call of unknown cost
// under the response's event id, for its submission as stored. It used to be left "to the replica holding
// its hold": where none does (forgotten, a restart) or that one never polls (its follow-ups off), the
// response was never recorded at all. Recording it charges nothing and claims nothing, so the replica that
// does hold its hold still charges that hold (the worst case) when its own poll finds it.
import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { responseEventId } from "../src/event-ids.js";
import { adminRequest, gatewayRecords, researcherLimitsFile, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { startRedis } from "./redis-server.js";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

type TestGateway = Awaited<ReturnType<typeof startTestGateway>>;

const FEATURE = "unheld-unreadable";
const RUN = "unheld-unreadable-run";
const REQUEST = { model: "gpt-5", input: "Research caching", background: true, max_output_tokens: 1000 };
let cases = 0;

const through = (gw: TestGateway) =>
  new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });

const headersOfCase = () => ({
  "x-mock-case": `unheld-unreadable-${++cases}`,
  "x-mock-scenario": "usage-unreadable-when-polled",
  "x-tollgate-feature": FEATURE,
  "x-tollgate-agent-run-id": RUN,
  "x-tollgate-agent-type": "researcher",
});

/** Polled through `gw` until found finished, and once more. */
async function polledFinished(gw: TestGateway, id: string, headers: Record<string, string>) {
  await vi.waitFor(
    async () =>
      expect((await through(gw).responses.retrieve(id, undefined, { headers })).status).toBe("completed"),
    { timeout: 5_000, interval: 20 },
  );
  await through(gw).responses.retrieve(id, undefined, { headers });
}

/** The llm records of response `id` in `gw`'s store, once one is in (and no second could come meanwhile). */
async function llmRecordsOf(gw: TestGateway, id: string) {
  const llm = async () =>
    (await gatewayRecords(gw.runtime)).filter((r) => r.kind === "llm" && r.request_id === id);
  await vi.waitFor(async () => expect(await llm()).not.toEqual([]), { timeout: 5_000, interval: 20 });
  await sleep(300);
  return llm();
}

const unknownCostRecordOf = (id: string) => ({
  event_id: responseEventId("default", id),
  status: "ok",
  error_type: "usage_unreadable",
  priced: false,
  feature: FEATURE,
  agent_run_id: RUN,
});

describe("gateway: a background response a poll finds completed, its usage unreadable, its hold not here", () => {
  it("its submission forgotten (pushed out by a newer one): recorded all the same, at a cost unknown", async () => {
    const limitsPath = researcherLimitsFile(FEATURE);
    const gw = await startTestGateway(
      mock.url,
      { backgroundFollowMs: 0, backgroundRemembered: 1 },
      { limitsPath },
    );
    try {
      const headers = headersOfCase();
      const { id } = await through(gw).responses.create(REQUEST, { headers });
      // A newer submission (another response) pushes it out: its hold goes, nothing spent.
      const newer = { "x-mock-case": headers["x-mock-case"] };
      await through(gw).responses.create(REQUEST, {
        headers: { ...newer, "x-mock-fixture": "openai/responses.gpt-4o.cached.json" },
      });
      await gw.runtime.recorder.flush();
      await polledFinished(gw, id, headers);
      expect(await llmRecordsOf(gw, id)).toMatchObject([unknownCostRecordOf(id)]);
    } finally {
      await gw.stop();
      rmSync(dirname(limitsPath), { recursive: true, force: true });
    }
  });

  describe("two replicas sharing limits on Redis, its client polling through the one without its hold", () => {
    async function replicas(followMsOfHolder: number) {
      const redis = await startRedis();
      const limitsPath = researcherLimitsFile(FEATURE);
      const holder = await startTestGateway(
        mock.url,
        { backgroundFollowMs: followMsOfHolder },
        { limitsPath, redisUrl: redis.url },
      );
      const other = await startTestGateway(
        mock.url,
        { backgroundFollowMs: 0 },
        { limitsPath, redisUrl: redis.url },
      );
      const stop = async () => {
        await holder.stop();
        await other.stop();
        await redis.stop();
        rmSync(dirname(limitsPath), { recursive: true, force: true });
      };
      return { holder, other, stop };
    }

    it("the holder never polling (its follow-ups off): the poll records it", async () => {
      const { holder, other, stop } = await replicas(0);
      try {
        const headers = headersOfCase();
        const { id } = await through(holder).responses.create(REQUEST, { headers });
        await holder.runtime.recorder.flush();
        await polledFinished(other, id, headers);
        expect(await llmRecordsOf(other, id)).toMatchObject([unknownCostRecordOf(id)]);
      } finally {
        await stop();
      }
    });

    it("the holder following it: its own poll still charges the worst case it held, once", async () => {
      const { holder, other, stop } = await replicas(1_000);
      try {
        const headers = headersOfCase();
        const { id } = await through(holder).responses.create(REQUEST, { headers });
        await holder.runtime.recorder.flush();
        await polledFinished(other, id, headers);
        // The holder's own poll charges its hold, the worst case of its 1,000 output tokens, to its run and
        // budget alike (on Redis the budget's reserved amount is its lease's, not the call's hold).
        const run = async () => (await adminRequest(holder, "GET", `/api/runs/${RUN}`)).json;
        await vi.waitFor(async () => expect(BigInt((await run()).usage.cost_nanousd)).toBeGreaterThan(0n), {
          timeout: 8_000,
          interval: 50,
        });
        await sleep(300);
        const charged = (await run()).usage.cost_nanousd as string;
        expect((await run()).usage).toMatchObject({ llm_calls: 1 });
        const budget = (await adminRequest(holder, "GET", `/api/budgets/${FEATURE}`)).json;
        expect(budget.spend_nanousd).toBe(charged);
        expect(await llmRecordsOf(holder, id)).toMatchObject([unknownCostRecordOf(id)]);
      } finally {
        await stop();
      }
    });
  });
});
