// A background response is recorded again when a later poll (its claim lapsed) finds the store too far behind
// to say it is recorded: the store keeps one record under its event id, and its budgets must count it once
// too, whichever replica recorded it first and how (its submission's settle, or a charge).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { CallRecord } from "@tollgate/core";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { adminRequest, gatewayRecords, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { startRedis } from "./redis-server.js";

const FEATURE = "polled-late";
/** How long a lookup waits for the store here: the store answers later than that. */
const LOOKUP_MS = 200;

type TestGateway = Awaited<ReturnType<typeof startTestGateway>>;

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

/** Two replicas sharing a Redis limits backend, a budget on FEATURE, and helpers to call through them. */
async function withReplicas(
  test: (t: {
    a: TestGateway;
    b: TestGateway;
    client: Redis;
    through: (gw: TestGateway) => OpenAI;
    budget: () => Promise<{ spend_nanousd: string; reserved_nanousd: string }>;
    /** Waits until the budget's spend is `cost`, nothing reserved. */
    settledTo: (cost: bigint | string) => Promise<void>;
    recorded: (gw: TestGateway, id: string) => Promise<CallRecord[]>;
    pollFinished: (gw: TestGateway, id: string) => Promise<void>;
    storeBehind: (gw: TestGateway) => void;
  }) => Promise<void>,
  headers: Record<string, string>,
) {
  const redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), "tollgate-recorded-again-"));
  const limitsPath = join(dir, "limits.yaml");
  writeFileSync(
    limitsPath,
    `budgets:\n  - { id: ${FEATURE}, scope: { feature: ${FEATURE} }, window: day, limit_usd: "1000" }\n`,
  );
  const replica = () =>
    startTestGateway(
      mock.url,
      { backgroundFollowMs: 0, storeLookupMs: LOOKUP_MS },
      { limitsPath, redisUrl: redis.url },
    );
  const [a, b] = [await replica(), await replica()];
  const client = new Redis(redis.url);
  const through = (gw: TestGateway) =>
    new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const budget = async () => (await adminRequest(a, "GET", `/api/budgets/${FEATURE}`)).json;
  try {
    await test({
      a,
      b,
      client,
      through,
      budget,
      settledTo: (cost) =>
        vi.waitFor(
          async () =>
            expect(await budget()).toMatchObject({ spend_nanousd: String(cost), reserved_nanousd: "0" }),
          { timeout: 5_000, interval: 20 },
        ),
      recorded: async (gw, id) =>
        (await gatewayRecords(gw.runtime)).filter((r) => r.kind === "llm" && r.request_id === id),
      pollFinished: (gw, id) =>
        vi.waitFor(
          async () =>
            expect((await through(gw).responses.retrieve(id, undefined, { headers })).status).toBe(
              "completed",
            ),
          { timeout: 5_000, interval: 20 },
        ),
      // The event store, far behind, answers gw's lookups too late.
      storeBehind: (gw) => {
        gw.runtime.store.query = async (filter) => {
          await sleep(5 * LOOKUP_MS);
          return a.runtime.store.query(filter);
        };
      },
    });
  } finally {
    client.disconnect();
    await a.stop();
    await b.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("gateway (limits redis): a background response recorded again, its store's lookup timed out", () => {
  it("is charged to its budget once: a replica's settle of its submission, then another's charge", async () => {
    const headers = { "x-mock-case": "recorded-again", "x-tollgate-feature": FEATURE };
    await withReplicas(
      async ({ a, b, client, through, budget, settledTo, recorded, pollFinished, storeBehind }) => {
        // Submitted and found finished through replica a: its submission's hold becomes its spend.
        const { id } = await through(a).responses.create(
          { model: "gpt-5", input: "go", background: true },
          { headers },
        );
        await pollFinished(a, id);
        await vi.waitFor(async () => expect(await recorded(a, id)).toHaveLength(1), { timeout: 5_000 });
        const [record] = await recorded(a, id);
        await settledTo(record!.cost_nanousd);

        // Ten minutes on, its claim has lapsed; the event store, far behind, answers b's lookup too late.
        await client.del(`tg:{}:claim:bg:${id}`);
        storeBehind(b);
        await pollFinished(b, id);
        await vi.waitFor(async () => expect(await recorded(b, id)).toHaveLength(1), { timeout: 5_000 });
        expect((await recorded(b, id))[0]!.event_id).toBe(record!.event_id); // one record, in a shared store
        await sleep(300); // its charge, were it counted again, would be in by now
        expect(await budget()).toMatchObject({ spend_nanousd: String(record!.cost_nanousd) });
      },
      headers,
    );
  });

  it("streamed to its end, then polled again: stored once, charged to its budget once", async () => {
    const headers = { "x-mock-case": "recorded-again-stream", "x-tollgate-feature": FEATURE };
    await withReplicas(
      async ({ a, b, client, through, budget, settledTo, recorded, pollFinished, storeBehind }) => {
        // Streamed to its end through replica a: the stream records the response.
        const stream = await through(a)
          .responses.create({ model: "gpt-5", input: "go", background: true, stream: true }, { headers })
          .withResponse();
        let id = "";
        for await (const event of stream.data) if ("response" in event) id = event.response.id;
        await vi.waitFor(async () => expect(await recorded(a, id)).toHaveLength(1), { timeout: 5_000 });
        const [record] = await recorded(a, id);
        await settledTo(record!.cost_nanousd);
        // The reply's header names the stream's own record, as any call's does.
        const own = stream.response.headers.get("x-tollgate-event-id")!;
        expect(await a.runtime.store.findEvent("default", own)).toMatchObject({ request_id: id });

        // Its claim lapsed; the event store, far behind, answers b's lookup too late.
        await client.del(`tg:{}:claim:bg:${id}`);
        storeBehind(b);
        await pollFinished(b, id);
        // b's record is a's (one record, in a shared store): b's own store has it under a's event id.
        await vi.waitFor(
          async () => {
            await b.runtime.recorder.flush();
            expect(await b.runtime.store.findEvent("default", record!.event_id)).not.toBeNull();
          },
          { timeout: 5_000, interval: 50 },
        );
        await sleep(300); // its charge, were it counted again, would be in by now
        expect(await budget()).toMatchObject({ spend_nanousd: String(record!.cost_nanousd) });
      },
      headers,
    );
  });

  it("its image generation tool's call is charged once too, recorded again hours later", async () => {
    const headers = { "x-mock-case": "recorded-again-image", "x-tollgate-feature": FEATURE };
    await withReplicas(async ({ a, b, client, through, budget, recorded, pollFinished, storeBehind }) => {
      const { id } = await through(a).responses.create(
        { model: "gpt-5-nano", input: "Draw a cat", tools: [{ type: "image_generation" }], background: true },
        { headers },
      );
      await pollFinished(a, id);
      // The response's record and its image's.
      await vi.waitFor(async () => expect(await recorded(a, id)).toHaveLength(2), { timeout: 5_000 });
      const spent = (await recorded(a, id)).reduce((sum, r) => sum + r.cost_nanousd, 0n);
      await vi.waitFor(
        async () =>
          expect(await budget()).toMatchObject({ spend_nanousd: String(spent), reserved_nanousd: "0" }),
        { timeout: 5_000, interval: 20 },
      );

      // Two hours on: its claim, and every marker kept an hour, have lapsed (the day's spend has not).
      for (const key of await client.keys("tg:*")) {
        const ttl = await client.pttl(key);
        if (ttl >= 0 && ttl <= 2 * 3_600_000) await client.del(key);
      }
      storeBehind(b);
      await pollFinished(b, id);
      await sleep(300); // its charges, were they counted again, would be in by now
      expect(await budget()).toMatchObject({ spend_nanousd: String(spent) });
    }, headers);
  });
});
