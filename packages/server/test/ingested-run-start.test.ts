// An agent run's calls ingested through the events API (an SDK's, an OTLP exporter's) after they were made:
// the run started at its earliest call, not when its calls arrived, live as after a restart (its wall time
// and max_wall_time_s count from there). An unkill starts a run over, live as after a restart.
import { rmSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { uuidv7 } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { adminRequest, postEvents, startTestGateway } from "./helpers.js";
import { startMockUpstream } from "./mock-upstream.js";

type Gateway = Awaited<ReturnType<typeof startTestGateway>>;

/** Ingests one call of run `runId` per ts_start given. */
async function ingest(gw: Gateway, runId: string, ...tsStarts: number[]): Promise<void> {
  const calls = tsStarts.map((ts) => ({
    event_id: uuidv7(),
    ts_start: ts,
    provider: "openai",
    api: "openai.chat",
    model: "gpt-4.1-nano",
    input_uncached_tokens: 10,
    output_tokens: 5,
    agent_run_id: runId,
    agent_type: "ingested",
  }));
  expect((await postEvents(gw.runtime.app, gw.runtime.rootToken, calls)).json.accepted).toBe(calls.length);
}

const startedAt = async (gw: Gateway, runId: string) =>
  (await adminRequest(gw, "GET", `/api/runs/${runId}`)).json.usage.started_at as number;

/** A gateway, then one restarted on its data dir: `live` runs on the first, `rebuilt` on the second. */
async function acrossRestart<T>(
  live: (gw: Gateway) => Promise<T>,
  rebuilt: (gw: Gateway, seen: T) => Promise<void>,
) {
  const mock = await startMockUpstream({ chunkDelayMs: 0 });
  const first = await startTestGateway(mock.url, {}, { keepDataDir: true });
  try {
    const seen = await live(first);
    await first.runtime.recorder.flush();
    await first.stop();
    const second = await startTestGateway(mock.url, {}, { dataDir: first.dataDir, keepDataDir: true });
    try {
      await rebuilt(second, seen);
    } finally {
      await second.stop();
    }
  } finally {
    rmSync(first.dataDir, { recursive: true, force: true });
    await mock.close();
  }
}

describe("an ingested run's start", () => {
  it("is its earliest call's, however late its calls arrive, and in whatever order", async () => {
    const made = Date.now() - 3_600_000; // an hour ago
    await acrossRestart(
      async (gw) => {
        await ingest(gw, "late-run", made + 60_000, made + 120_000);
        expect(await startedAt(gw, "late-run")).toBe(made + 60_000);
        await ingest(gw, "late-run", made); // its first call, ingested last
        expect(await startedAt(gw, "late-run")).toBe(made);
      },
      async (gw) => expect(await startedAt(gw, "late-run")).toBe(made),
    );
  });

  it("leaves out a call of more than a week ago, live as after a restart (a rebuild reads a week)", async () => {
    const made = Date.now() - 3_600_000;
    const runUsage = async (gw: Gateway) => (await adminRequest(gw, "GET", "/api/runs/week-run")).json.usage;
    await acrossRestart(
      async (gw) => {
        await ingest(gw, "week-run", made);
        await ingest(gw, "week-run", Date.now() - 8 * 86_400_000); // eight days late
        const usage = await runUsage(gw);
        expect(usage).toMatchObject({ started_at: made, llm_calls: 1 });
        return usage;
      },
      async (gw, live) => expect(await runUsage(gw)).toEqual(live),
    );
  });

  it("is its unkill's once unkilled, not its first call's since, live as after a restart", async () => {
    await acrossRestart(
      async (gw) => {
        await ingest(gw, "restarted-run", Date.now() - 60_000);
        expect((await adminRequest(gw, "POST", "/api/runs/restarted-run/kill")).status).toBe(200);
        expect((await adminRequest(gw, "POST", "/api/runs/restarted-run/unkill")).status).toBe(200);
        const unkilled = await startedAt(gw, "restarted-run");
        await sleep(20);
        await ingest(gw, "restarted-run", Date.now()); // its first call since
        expect(await startedAt(gw, "restarted-run")).toBe(unkilled);
        return unkilled;
      },
      async (gw, unkilled) => expect(await startedAt(gw, "restarted-run")).toBe(unkilled),
    );
  });
});

describe("an unkilled run", () => {
  it("counts no call made before its unkill, however late it is ingested, live as after a restart", async () => {
    const usage = async (gw: Gateway) =>
      (await adminRequest(gw, "GET", "/api/runs/straggled-run")).json.usage;
    const made = Date.now() - 60_000;
    await acrossRestart(
      async (gw) => {
        await ingest(gw, "straggled-run", made);
        expect((await adminRequest(gw, "POST", "/api/runs/straggled-run/kill")).status).toBe(200);
        expect((await adminRequest(gw, "POST", "/api/runs/straggled-run/unkill")).status).toBe(200);
        await ingest(gw, "straggled-run", made + 1000); // the killed run's call, exported late
        expect(await usage(gw)).toMatchObject({ llm_calls: 0, cost_nanousd: "0" });
      },
      async (gw) => expect(await usage(gw)).toMatchObject({ llm_calls: 0, cost_nanousd: "0" }),
    );
  });

  it("killed again counts from its last unkill, live as after a restart: not the week before it", async () => {
    const usage = async (gw: Gateway) => (await adminRequest(gw, "GET", "/api/runs/rekilled-run")).json.usage;
    const made = Date.now() - 60_000;
    await acrossRestart(
      async (gw) => {
        await ingest(gw, "rekilled-run", made); // the first run's call
        expect((await adminRequest(gw, "POST", "/api/runs/rekilled-run/kill")).status).toBe(200);
        expect((await adminRequest(gw, "POST", "/api/runs/rekilled-run/unkill")).status).toBe(200);
        const unkilled = await usage(gw);
        await sleep(20);
        await ingest(gw, "rekilled-run", Date.now()); // the run started over's
        expect((await adminRequest(gw, "POST", "/api/runs/rekilled-run/kill")).status).toBe(200);
        const live = await usage(gw);
        expect(live).toMatchObject({ llm_calls: 1, started_at: unkilled.started_at });
        return live;
      },
      async (gw, live) => {
        expect(await usage(gw)).toEqual(live);
        await ingest(gw, "rekilled-run", made + 1000); // the first run's call, exported late
        expect(await usage(gw)).toEqual(live);
      },
    );
  });
});
