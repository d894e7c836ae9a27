// A background stream read to its end whose final event carries no usage, or usage no reader can price:
// recorded as its submission (kind=other), it leaves the response to the poll that reads its usage (a
// client's, through this gateway or another, or the gateway's own), whose record, under the event id a
// poll's record of it takes, is the response's one llm record, counted once to its budget and agent run at
// its exact cost. A poll that cannot read the usage either (OpenAI's final event carries the response a poll
// gets) records it at a cost unknown, counted at the worst case the stream held, never $0. So is a stream cut
// short, then resumed to such an end: that used to count as a response finished without usage. A gateway of
// its own per case: a gateway records a response once, under the id its fixture gives it.
import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type CallRecord, extractFromSse } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { responseEventId } from "../src/event-ids.js";
import {
  adminRequest,
  collect,
  expectExactUsageAndCost,
  gatewayRecords,
  rawRequest,
  researcherLimitsFile,
  startTestGateway,
} from "./helpers.js";
import { FX, fixture, type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { startRedis } from "./redis-server.js";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

type TestGateway = Awaited<ReturnType<typeof startTestGateway>>;

const FEATURE = "unreadable";
const RUN = "unreadable-run";
const SCENARIOS = ["usage-unreadable-at-end", "no-usage-at-end"] as const;
/** A gateway's own poll after this long: it follows its responses, but a client's poll comes first. */
const LATER = 60_000;
let cases = 0;

/**
 * Gateways that follow background responses after `followMs` (0: never), sharing `redisUrl`'s limits (or
 * each its own, in memory), under a $10/day budget on FEATURE and an agent type with a cost ceiling.
 */
async function gateways(n: number, followMs: number, redisUrl: string | null = null) {
  const limitsPath = researcherLimitsFile(FEATURE);
  const started: TestGateway[] = [];
  for (let i = 0; i < n; i++)
    started.push(
      await startTestGateway(mock.url, { backgroundFollowMs: followMs }, { limitsPath, redisUrl }),
    );
  const stop = async () => {
    for (const gw of started) await gw.stop();
    rmSync(dirname(limitsPath), { recursive: true, force: true });
  };
  return { started, stop };
}

const through = (gw: TestGateway) =>
  new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });

/**
 * A background stream through `gw`, read to its end, in `scenario` (`created`: run as its first event
 * came, the stream going on): its response's id, and its headers.
 */
async function streamedToItsEnd(
  gw: TestGateway,
  scenario: (typeof SCENARIOS)[number] | "usage-unreadable-throughout",
  created?: (id: string, headers: Record<string, string>) => Promise<void>,
) {
  const headers = {
    "x-mock-case": `unreadable-${++cases}`,
    "x-mock-scenario": scenario,
    "x-tollgate-feature": FEATURE,
    "x-tollgate-agent-run-id": RUN,
    "x-tollgate-agent-type": "researcher",
    // Slow enough that the stream still runs as `created` does.
    ...(created && { "x-mock-chunk-delay-ms": "50" }),
  };
  const stream = await through(gw).responses.create(
    { model: "gpt-5", input: "Research caching", stream: true, background: true },
    { headers },
  );
  let id = "";
  for await (const ev of stream) {
    if (ev.type !== "response.created") continue;
    id = ev.response.id;
    await created?.(id, headers);
  }
  // Stored before any poll looks in the store for a record of the response.
  await gw.runtime.recorder.flush();
  return { id, headers };
}

/** Polled through `gw` until found finished (a poll answers that more than once). */
async function polledTwice(gw: TestGateway, id: string, headers: Record<string, string>) {
  for (let i = 0; i < 2; i++)
    expect((await through(gw).responses.retrieve(id, undefined, { headers })).status).toBe("completed");
}

/** The records of response `id` in `gw`'s store, of `kind`. */
const recordsOf = async (gw: TestGateway, id: string, kind: "llm" | "other") =>
  (await gatewayRecords(gw.runtime)).filter((r) => r.kind === kind && r.request_id === id);

/** The LLM calls its store counts to the run (its agent-runs rollup, a run rebuilt after a restart). */
const storedRunCalls = async (gw: TestGateway) =>
  (await adminRequest(gw, "GET", "/api/rollups/agent-runs")).json.agent_types[0].llm_calls_per_run;

/**
 * The llm records of response `id` in the stores of `gws` once `polledBy`'s poll recorded it priced (and no
 * other could have come meanwhile), the unpriced first.
 */
async function llmRecordsOnceBilled(polledBy: TestGateway, gws: TestGateway[], id: string) {
  const llmRecords = async (gw: TestGateway) =>
    (await gatewayRecords(gw.runtime)).filter((r) => r.kind === "llm" && r.request_id === id);
  await vi.waitFor(async () => expect((await llmRecords(polledBy)).some((r) => r.priced)).toBe(true), {
    timeout: 5_000,
    interval: 20,
  });
  await sleep(300); // a second record or charge, were there one, would be in by now
  const stores = [...new Set(gws)];
  const records = (await Promise.all(stores.map(llmRecords))).flat();
  return records.sort((a, b) => Number(a.priced) - Number(b.priced));
}

/** `polled` is the response's record at its exact cost, counted once to its budget and run, nothing held. */
async function billedOnceBy(polledBy: TestGateway, polled: CallRecord, id: string) {
  expect(polled.event_id).toBe(responseEventId("default", id));
  expectExactUsageAndCost(polled, extractFromSse("openai.responses", fixture(FX.responsesStream)), "openai");
  const cost = String(polled.cost_nanousd);
  await vi.waitFor(
    async () =>
      expect((await adminRequest(polledBy, "GET", `/api/budgets/${FEATURE}`)).json).toMatchObject({
        spend_nanousd: cost,
        reserved_usd: "0.00",
      }),
    { timeout: 5_000, interval: 20 },
  );
  const run = (await adminRequest(polledBy, "GET", `/api/runs/${RUN}`)).json;
  expect(run.usage).toMatchObject({ cost_nanousd: cost, llm_calls: 1 });
  expect(await storedRunCalls(polledBy)).toBe(1);
}

/**
 * Response `id`'s one llm record in `gw`'s store, of a cost unknown (`usage_unreadable`), its budget and run
 * charged what was held for it (the worst case, more than nothing), nothing held any more.
 */
async function countedAtItsHoldAlone(gw: TestGateway, id: string) {
  const budget = async () => (await adminRequest(gw, "GET", `/api/budgets/${FEATURE}`)).json;
  await vi.waitFor(async () => expect((await budget()).reserved_usd).toBe("0.00"), {
    timeout: 5_000,
    interval: 20,
  });
  await vi.waitFor(async () => expect(await recordsOf(gw, id, "llm")).toHaveLength(1), {
    timeout: 5_000,
    interval: 20,
  });
  expect(await recordsOf(gw, id, "llm")).toMatchObject([
    { event_id: responseEventId("default", id), error_type: "usage_unreadable", priced: false },
  ]);
  const spent = (await budget()).spend_nanousd as string;
  expect(BigInt(spent)).toBeGreaterThan(1_000_000_000n); // the worst case held ($4.000095), not the fixture's cents
  const run = (await adminRequest(gw, "GET", `/api/runs/${RUN}`)).json;
  expect(run.usage).toMatchObject({ cost_nanousd: spent, llm_calls: 1 });
  expect(await storedRunCalls(gw)).toBe(1);
}

/**
 * The poll's llm record (through `polledBy`), the response's one, counted once at its cost to its budget
 * and run, nothing held; the stream's record (through `streamedBy`) is its submission's.
 */
async function countedOnceByThePoll(streamedBy: TestGateway, polledBy: TestGateway, id: string) {
  await onlyThePollsRecordBilled(polledBy, id, streamedBy);
  expect(await recordsOf(streamedBy, id, "other")).toHaveLength(1);
}

/** The poll's (through `polledBy`) is the one llm record of response `id` in the stores of both, billed once. */
async function onlyThePollsRecordBilled(polledBy: TestGateway, id: string, streamedBy = polledBy) {
  const [polled, ...more] = await llmRecordsOnceBilled(polledBy, [streamedBy, polledBy], id);
  expect(more).toEqual([]);
  await billedOnceBy(polledBy, polled!, id);
}

describe("gateway: a background stream read to its end, its usage unreadable", () => {
  it.each(SCENARIOS)(
    "%s, then polled by its client: the poll's record is kept, and counted once",
    async (s) => {
      const { started, stop } = await gateways(1, LATER);
      const [gw] = started as [TestGateway];
      try {
        const { id, headers } = await streamedToItsEnd(gw, s);
        await polledTwice(gw, id, headers);
        await countedOnceByThePoll(gw, gw, id);
      } finally {
        await stop();
      }
    },
  );

  it.each(SCENARIOS)("%s, polled by no client: the gateway's own poll records it, once", async (s) => {
    const { started, stop } = await gateways(1, 200);
    const [gw] = started as [TestGateway];
    try {
      const { id } = await streamedToItsEnd(gw, s);
      await countedOnceByThePoll(gw, gw, id);
    } finally {
      await stop();
    }
  });

  // OpenAI's final event carries the response a poll gets: usage the stream cannot read, no poll can.
  describe("its usage unreadable in the response itself: the poll cannot read it either, and its budget and run count the worst case the stream held, never nothing", () => {
    /** The response counted at `held`, the worst case its stream held, its one llm record the poll's. */
    async function countedAtItsHold(gw: TestGateway, id: string, held: string) {
      const budget = async () => (await adminRequest(gw, "GET", `/api/budgets/${FEATURE}`)).json;
      await vi.waitFor(async () => expect((await budget()).reserved_usd).toBe("0.00"), {
        timeout: 5_000,
        interval: 20,
      });
      expect((await budget()).spend_nanousd).toBe(held);
      const run = (await adminRequest(gw, "GET", `/api/runs/${RUN}`)).json;
      expect(run.usage).toMatchObject({ cost_nanousd: held, llm_calls: 1 });
      expect(await recordsOf(gw, id, "llm")).toMatchObject([
        { event_id: responseEventId("default", id), error_type: "usage_unreadable", priced: false },
      ]);
      expect(await storedRunCalls(gw)).toBe(1);
    }

    const reserved = async (gw: TestGateway) =>
      (await adminRequest(gw, "GET", `/api/budgets/${FEATURE}`)).json.reserved_nanousd as string;

    it.each([
      ["polled by its client", LATER],
      ["polled by no client", 200],
    ])("%s", async (_, followMs) => {
      const { started, stop } = await gateways(1, followMs);
      const [gw] = started as [TestGateway];
      try {
        const { id, headers } = await streamedToItsEnd(gw, "usage-unreadable-throughout");
        const held = await reserved(gw);
        expect(BigInt(held)).toBeGreaterThan(0n);
        if (followMs === LATER) await polledTwice(gw, id, headers);
        await countedAtItsHold(gw, id, held);
      } finally {
        await stop();
      }
    });

    it("polled by its client while the stream still runs", async () => {
      const { started, stop } = await gateways(1, LATER);
      const [gw] = started as [TestGateway];
      try {
        let held = "";
        const { id } = await streamedToItsEnd(gw, "usage-unreadable-throughout", async (id, headers) => {
          held = await reserved(gw);
          await polledTwice(gw, id, headers);
        });
        expect(BigInt(held)).toBeGreaterThan(0n);
        await countedAtItsHold(gw, id, held);
      } finally {
        await stop();
      }
    });
  });

  // No poll may come: recorded at its end, it is counted the worst case it held, not let lapse at $0.
  it.each(SCENARIOS)(
    "%s, through a gateway that follows no response: recorded at its end, at the worst case held",
    async (s) => {
      const { started, stop } = await gateways(1, 0);
      const [gw] = started as [TestGateway];
      try {
        const { id } = await streamedToItsEnd(gw, s);
        await countedAtItsHoldAlone(gw, id);
      } finally {
        await stop();
      }
    },
  );

  it("its trailer says its cost unknown, the response's cost left to the poll", async () => {
    const { started, stop } = await gateways(1, LATER);
    const [gw] = started as [TestGateway];
    try {
      const res = await rawRequest(`${gw.url}/v1/responses`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer sk-test",
          "x-mock-case": `unreadable-${++cases}`,
          "x-mock-scenario": "usage-unreadable-at-end",
        },
        body: JSON.stringify({ model: "gpt-5", input: "Research caching", stream: true, background: true }),
      });
      expect(res.body).toContain('"response.completed"');
      expect(res.trailers["x-tollgate-cost-usd"]).toBe("unknown");
    } finally {
      await stop();
    }
  });

  it("polled through another replica (limits on Redis): that poll's record is kept, and counted once", async () => {
    const redis = await startRedis();
    // The streaming replica follows the response too: its poll finds it claimed by the other's, and lets
    // the stream's hold go.
    const { started, stop } = await gateways(2, 500, redis.url);
    const [a, b] = started as [TestGateway, TestGateway];
    try {
      const { id, headers } = await streamedToItsEnd(a, "usage-unreadable-at-end");
      await polledTwice(b, id, headers);
      await countedOnceByThePoll(a, b, id);
    } finally {
      await stop();
      await redis.stop();
    }
  });
});

/**
 * A background stream through `gw` cut short (its connection broke), then resumed through `gw` to its end in
 * `scenario`: its response's id, and the headers of its submission.
 */
async function resumedToItsEnd(gw: TestGateway, scenario: (typeof SCENARIOS)[number]) {
  const headers = {
    "x-mock-case": `unreadable-resumed-${++cases}`,
    "x-tollgate-feature": FEATURE,
    "x-tollgate-agent-run-id": RUN,
    "x-tollgate-agent-type": "researcher",
  };
  const stream = await through(gw).responses.create(
    { model: "gpt-5", input: "Research caching", stream: true, background: true },
    { headers: { ...headers, "x-mock-scenario": "reset-mid-stream" } },
  );
  const seen: { type: string; sequence_number: number; response?: { id: string } }[] = [];
  await expect(
    (async () => {
      for await (const ev of stream) seen.push(ev);
    })(),
  ).rejects.toThrow();
  const id = seen[0]!.response!.id;
  const rest = await collect(
    await through(gw).responses.retrieve(
      id,
      { stream: true, starting_after: seen.at(-1)!.sequence_number },
      { headers: { ...headers, "x-mock-scenario": scenario } },
    ),
  );
  expect(rest.at(-1)).toMatchObject({ type: "response.completed", response: { status: "completed" } });
  return { id, headers };
}

// Its resumed stream, read to its end, is how its client learns the response finished; its usage unread
// there, the response used to count as one finished without usage: its submission forgotten and its hold let
// go, nothing recorded, and the gateway followed it no more (a client's poll alone billed it).
describe("gateway: a background stream cut short, then resumed to its end, its usage unreadable", () => {
  it.each(SCENARIOS)(
    "%s, then polled by its client: the poll's record is its cost, counted once",
    async (s) => {
      const { started, stop } = await gateways(1, LATER);
      const [gw] = started as [TestGateway];
      try {
        const { id, headers } = await resumedToItsEnd(gw, s);
        await polledTwice(gw, id, headers);
        await onlyThePollsRecordBilled(gw, id);
      } finally {
        await stop();
      }
    },
  );

  it.each(SCENARIOS)(
    "%s, through a gateway that follows no response: recorded at its end, at the worst case held",
    async (s) => {
      const { started, stop } = await gateways(1, 0);
      const [gw] = started as [TestGateway];
      try {
        const { id } = await resumedToItsEnd(gw, s);
        await countedAtItsHoldAlone(gw, id);
      } finally {
        await stop();
      }
    },
  );

  it.each(SCENARIOS)("%s, polled by no client: the gateway's own poll records it, once", async (s) => {
    const { started, stop } = await gateways(1, 200);
    const [gw] = started as [TestGateway];
    try {
      const { id } = await resumedToItsEnd(gw, s);
      await onlyThePollsRecordBilled(gw, id);
    } finally {
      await stop();
    }
  });
});
