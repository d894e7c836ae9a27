// A background response is recorded again when a later poll (its claim lapsed) finds the store too far behind
// to say it is recorded: the store keeps one record under its event id, and its budgets must count it once
// too, whichever replica recorded it first and how (its submission's settle, or a charge).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { adminRequest, gatewayRecords, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { startRedis } from "./redis-server.js";

const FEATURE = "polled-late";
/** How long a lookup waits for the store here: the store answers later than that. */
const LOOKUP_MS = 200;

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

describe("gateway (limits redis): a background response recorded again, its store's lookup timed out", () => {
  it("is charged to its budget once: a replica's settle of its submission, then another's charge", async () => {
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
    try {
      const headers = { "x-mock-case": "recorded-again", "x-tollgate-feature": FEATURE };
      const through = (gw: typeof a) =>
        new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });
      const budget = async () =>
        (await adminRequest(a, "GET", `/api/budgets/${FEATURE}`)).json as {
          spend_nanousd: string;
          reserved_nanousd: string;
        };
      const recorded = async (gw: typeof a, id: string) =>
        (await gatewayRecords(gw.runtime)).filter((r) => r.kind === "llm" && r.request_id === id);
      const pollFinished = (gw: typeof a, id: string) =>
        vi.waitFor(
          async () =>
            expect((await through(gw).responses.retrieve(id, undefined, { headers })).status).toBe(
              "completed",
            ),
          { timeout: 5_000, interval: 20 },
        );

      // Submitted and found finished through replica a: its submission's hold becomes its spend.
      const { id } = await through(a).responses.create(
        { model: "gpt-5", input: "go", background: true },
        { headers },
      );
      await pollFinished(a, id);
      await vi.waitFor(async () => expect(await recorded(a, id)).toHaveLength(1), { timeout: 5_000 });
      const [record] = await recorded(a, id);
      await vi.waitFor(
        async () =>
          expect(await budget()).toEqual(
            expect.objectContaining({ spend_nanousd: String(record!.cost_nanousd), reserved_nanousd: "0" }),
          ),
        { timeout: 5_000, interval: 20 },
      );

      // Ten minutes on, its claim has lapsed; the event store, far behind, answers b's lookup too late.
      await client.del(`tg:{}:claim:bg:${id}`);
      const { store } = b.runtime;
      store.query = async (filter) => {
        await sleep(5 * LOOKUP_MS);
        return a.runtime.store.query(filter);
      };
      await pollFinished(b, id);
      await vi.waitFor(async () => expect(await recorded(b, id)).toHaveLength(1), { timeout: 5_000 });
      expect((await recorded(b, id))[0]!.event_id).toBe(record!.event_id); // one record, in a shared store
      await sleep(300); // its charge, were it counted again, would be in by now
      expect(await budget()).toMatchObject({ spend_nanousd: String(record!.cost_nanousd) });
    } finally {
      client.disconnect();
      await a.stop();
      await b.stop();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
