// A background response's record may be made again under its event id (a poll whose store lookup timed
// out) when its charge marker is gone: over a week later (the marker's lifetime), or after a restart of the
// embedded default (its markers are in memory). A month's or a lifetime window still counts the call then,
// and must count it once: the event store holds the record, so its charge was counted already. (What the
// limits backend may have forgotten, memory's last 100,000 charges included: recurring-charge-markers.test.ts.)
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Store } from "../src/store/types.js";
import { adminRequest, gatewayRecords, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { startRedis, type TestRedis } from "./redis-server.js";

const FEATURE = "charged-once";
const DAY_MS = 86_400_000;

type TestGateway = Awaited<ReturnType<typeof startTestGateway>>;

// Every clock of this process (gateway, limits, mock upstream) reads Date.now: moved on by `clock.ms`.
const realNow = Date.now;
const clock = { ms: 0 };
let mock: MockUpstream;
let dir: string;
let limitsPath: string;
beforeAll(async () => {
  Date.now = () => realNow() + clock.ms;
  mock = await startMockUpstream({ chunkDelayMs: 1 });
  dir = mkdtempSync(join(tmpdir(), "tollgate-charged-once-"));
  limitsPath = join(dir, "limits.yaml");
  writeFileSync(
    limitsPath,
    `budgets:\n  - { id: ${FEATURE}, scope: { feature: ${FEATURE} }, window: lifetime, limit_usd: "1000" }\n`,
  );
});
afterAll(async () => {
  Date.now = realNow;
  await mock?.close();
  rmSync(dir, { recursive: true, force: true });
});

const gateway = (opts: { redisUrl?: string; dataDir?: string } = {}) =>
  startTestGateway(
    mock.url,
    { backgroundFollowMs: 0 },
    { limitsPath, ...opts, keepDataDir: opts.dataDir !== undefined },
  );
const through = (gw: TestGateway) =>
  new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });
const spend = async (gw: TestGateway) =>
  (await adminRequest(gw, "GET", `/api/budgets/${FEATURE}`)).json as {
    spend_nanousd: string;
    reserved_nanousd: string;
  };

/** Submits a background response and polls it to its end: recorded once and charged once. */
async function submittedAndCharged(gw: TestGateway, headers: Record<string, string>) {
  const { id } = await through(gw).responses.create(
    { model: "gpt-5", input: "go", background: true },
    { headers },
  );
  await pollFinished(gw, id, headers);
  const records = async () =>
    (await gatewayRecords(gw.runtime)).filter((r) => r.kind === "llm" && r.request_id === id);
  await vi.waitFor(async () => expect(await records()).toHaveLength(1), { timeout: 5_000 });
  const cost = String((await records())[0]!.cost_nanousd);
  await vi.waitFor(
    async () => expect(await spend(gw)).toMatchObject({ spend_nanousd: cost, reserved_nanousd: "0" }),
    { timeout: 5_000, interval: 20 },
  );
  return { id, cost };
}

function pollFinished(gw: TestGateway, id: string, headers: Record<string, string>) {
  return vi.waitFor(
    async () =>
      expect((await through(gw).responses.retrieve(id, undefined, { headers })).status).toBe("completed"),
    { timeout: 5_000, interval: 20 },
  );
}

/**
 * The event store's next read fails, as one answered too late does: the poll's lookup finds nothing, and the
 * response is recorded again. Reads after it are `read`'s.
 */
function nextReadMissed(gw: TestGateway, read: Store["query"]) {
  const store = gw.runtime.store;
  store.query = () => {
    store.query = read;
    return Promise.reject(new Error("the store is too far behind"));
  };
}

/**
 * Polled again, its store lookup missed: recorded again, and its budget's spend still `cost`. The store's
 * reads are `read`'s (its own by default).
 */
async function recordedAgainChargedOnce(
  gw: TestGateway,
  id: string,
  cost: string,
  headers: Record<string, string>,
  read = gw.runtime.store.query,
) {
  nextReadMissed(gw, read);
  await pollFinished(gw, id, headers);
  await sleep(300); // its charge, were it counted again, would be in by now
  await gw.runtime.recorder.flush();
  expect(await spend(gw)).toMatchObject({ spend_nanousd: cost, reserved_nanousd: "0" });
}

describe("gateway: a background response recorded again once its charge marker is gone", () => {
  it("over a week later, through another replica (limits on Redis): its lifetime budget counts it once", async () => {
    const headers = { "x-mock-case": "charged-once-redis", "x-tollgate-feature": FEATURE };
    const redis: TestRedis = await startRedis();
    const client = new Redis(redis.url);
    const a = await gateway({ redisUrl: redis.url });
    const b = await gateway({ redisUrl: redis.url });
    try {
      const { id, cost } = await submittedAndCharged(a, headers);
      // Eight days on: every key kept a week or less (its claim, its charge's marker) has lapsed; the
      // lifetime budget's spend, kept for good, has not. The replicas share one event store: b reads a's.
      clock.ms = 8 * DAY_MS;
      for (const key of await client.keys("tg:*")) {
        const ttl = await client.pttl(key);
        if (ttl >= 0 && ttl <= 7 * DAY_MS) await client.del(key);
      }
      b.runtime.store.storedIds = (ws, ids) => a.runtime.store.storedIds(ws, ids);
      await recordedAgainChargedOnce(b, id, cost, headers, (filter) => a.runtime.store.query(filter));
    } finally {
      clock.ms = 0;
      client.disconnect();
      await a.stop();
      await b.stop();
      await redis.stop();
    }
  });

  it("after a restart of the embedded default: its budget, seeded from the store, counts it once", async () => {
    const headers = { "x-mock-case": "charged-once-restart", "x-tollgate-feature": FEATURE };
    const dataDir = mkdtempSync(join(dir, "restart-"));
    const before = await gateway({ dataDir });
    let recorded: { id: string; cost: string };
    try {
      recorded = await submittedAndCharged(before, headers);
    } finally {
      await before.stop();
    }
    const after = await gateway({ dataDir });
    try {
      // Seeded from the store at the start: the call counts once already.
      expect(await spend(after)).toMatchObject({ spend_nanousd: recorded.cost });
      await recordedAgainChargedOnce(after, recorded.id, recorded.cost, headers);
    } finally {
      await after.stop();
    }
  });
});
