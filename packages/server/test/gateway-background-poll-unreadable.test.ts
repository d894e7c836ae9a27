// A background response a poll finds `completed` without usage it can read (none, or usage no reader can
// price): it ran, so it is an ok call of unknown cost, as any whose usage is unreadable: its llm record under
// the event id a poll's record of it takes (usage_unreadable, priced=false), its budget and agent run charged
// the worst case its submission held. It used to count as a response finished without usage (failed or
// cancelled before it ran): nothing recorded, its hold let go, its budget and run charged nothing. A gateway
// of its own per case: a gateway records a response once, under the id its fixture gives it.
import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { responseEventId } from "../src/event-ids.js";
import { adminRequest, gatewayRecords, researcherLimitsFile, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

const FEATURE = "polled-unreadable";
const RUN = "polled-unreadable-run";
const SCENARIOS = ["usage-unreadable-when-polled", "no-usage-when-polled"] as const;
let cases = 0;

/**
 * A gateway that follows background responses after `followMs` (0: never), under a $10/day budget on
 * FEATURE and an agent type with a cost ceiling; a background response submitted through it in `scenario`
 * (its own polls send the submission's headers, so find it as a client's do), and what its submission holds.
 */
async function submittedThrough(followMs: number, scenario: string) {
  const limitsPath = researcherLimitsFile(FEATURE);
  const gw = await startTestGateway(mock.url, { backgroundFollowMs: followMs }, { limitsPath });
  const openai = new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const headers = {
    "x-mock-case": `poll-unreadable-${++cases}`,
    "x-mock-scenario": scenario,
    "x-tollgate-feature": FEATURE,
    "x-tollgate-agent-run-id": RUN,
    "x-tollgate-agent-type": "researcher",
  };
  const budget = async () => (await adminRequest(gw, "GET", `/api/budgets/${FEATURE}`)).json;
  const submitted = await openai.responses.create(
    { model: "gpt-5", input: "Research caching", background: true, max_output_tokens: 1000 },
    { headers },
  );
  expect(submitted.status).toBe("queued");
  const held = BigInt((await budget()).reserved_nanousd);
  expect(held).toBeGreaterThan(0n);
  const stop = async () => {
    await gw.stop();
    rmSync(dirname(limitsPath), { recursive: true, force: true });
  };
  return { gw, openai, headers, budget, id: submitted.id, held, stop };
}

type Submitted = Awaited<ReturnType<typeof submittedThrough>>;

/**
 * The response's one llm record, an ok call of unknown cost under the response's event id; its budget and
 * agent run charged the worst case its submission held, once, and nothing held any more.
 */
async function recordedAsUnknownCost({ gw, budget, id, held }: Submitted) {
  const llm = async () =>
    (await gatewayRecords(gw.runtime)).filter((r) => r.kind === "llm" && r.request_id === id);
  await vi.waitFor(async () => expect(await llm()).toHaveLength(1), { timeout: 5_000, interval: 20 });
  await sleep(300); // a second record or charge, were there one, would be in by now
  const records = await llm();
  expect(records).toHaveLength(1);
  expect(records[0]).toMatchObject({
    event_id: responseEventId("default", id),
    status: "ok",
    error_type: "usage_unreadable",
    priced: false,
    feature: FEATURE,
    agent_run_id: RUN,
  });
  expect(await budget()).toMatchObject({ spend_nanousd: String(held), reserved_nanousd: "0" });
  const run = (await adminRequest(gw, "GET", `/api/runs/${RUN}`)).json;
  expect(run.usage).toMatchObject({ cost_nanousd: String(held), llm_calls: 1 });
}

describe("gateway: a background response a poll finds completed, its usage unreadable", () => {
  it.each(SCENARIOS)(
    "%s, polled by its client: recorded once as an ok call of unknown cost, charged its hold",
    async (s) => {
      const sub = await submittedThrough(0, s);
      try {
        const poll = () => sub.openai.responses.retrieve(sub.id, undefined, { headers: sub.headers });
        expect((await poll()).status).toBe("in_progress");
        for (let i = 0; i < 2; i++) expect((await poll()).status).toBe("completed");
        await recordedAsUnknownCost(sub);
      } finally {
        await sub.stop();
      }
    },
  );

  it.each(SCENARIOS)("%s, polled by no client: the gateway's own poll records it so", async (s) => {
    const sub = await submittedThrough(100, s);
    try {
      await recordedAsUnknownCost(sub);
    } finally {
      await sub.stop();
    }
  });
});
