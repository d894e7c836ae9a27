// A budget created while calls keep coming (ingest batches, gateway streams in flight) counts each call of
// its window once: the ones its seed read from the store, the ones still on their way to the store, and
// the ones settled after it appeared, admitted before it existed included. Run in-process, and against
// `tollgate serve` as shipped (the store on its own thread).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminRequest, type Json, startTestGateway, validRecord } from "./helpers.js";
import { startMockUpstream } from "./mock-upstream.js";
import { startRedis, type TestRedis } from "./redis-server.js";

const CLI = fileURLToPath(new URL("../bin/tollgate.js", import.meta.url));
const USER = "under-load";

/** A running server, as adminRequest takes it. */
interface Target {
  url: string;
  runtime: { rootToken: string };
  stop(): Promise<void>;
}

let mock: Awaited<ReturnType<typeof startMockUpstream>>;
beforeAll(async () => {
  // Streams of a few hundred ms: some are always in flight when the budget appears.
  mock = await startMockUpstream({ chunkDelayMs: [5, 25] });
});
afterAll(async () => {
  await mock?.close();
});

async function inProcess(): Promise<Target> {
  const gw = await startTestGateway(mock.url);
  return gw;
}

async function served(): Promise<Target> {
  if (!existsSync(CLI.replace("bin/tollgate.js", "dist/cli.js")))
    throw new Error("build first: npm run build");
  const dataDir = mkdtempSync(join(tmpdir(), "tg-seed-load-"));
  const env: NodeJS.ProcessEnv = { ...process.env, TOLLGATE_OPENAI_BASE_URL: `${mock.url}/v1` };
  for (const k of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]) delete env[k];
  const proc: ChildProcess = spawn(process.execPath, [CLI, "--data-dir", dataDir, "serve", "--port", "0"], {
    env,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const info = join(dataDir, "server.json");
  const started = Date.now();
  while (!existsSync(info)) {
    if (proc.exitCode !== null || Date.now() - started > 30_000)
      throw new Error("tollgate serve did not start");
    await pause(50);
  }
  const { url, token } = JSON.parse(readFileSync(info, "utf8")) as { url: string; token: string };
  return {
    url,
    runtime: { rootToken: token },
    stop: async () => {
      proc.kill("SIGTERM");
      if (proc.exitCode === null) await new Promise((r) => proc.once("exit", r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A streamed chat call through the gateway, attributed to USER, read to its end. */
async function streamedCall(t: Target): Promise<void> {
  const res = await fetch(`${t.url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: "Bearer sk-test",
      "x-tollgate-user-id": USER,
    },
    body: JSON.stringify({
      model: "gpt-4.1-nano",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "hi" }],
    }),
  });
  expect(res.status).toBe(200);
  await res.text();
}

async function ingestBatch(t: Target): Promise<void> {
  const events = Array.from({ length: 25 }, () => validRecord({ user_id: USER, output_tokens: 1_000 }));
  const res = await adminRequest(t, "POST", "/v1/events", { events });
  expect(res.json.accepted).toBe(25);
}

/** Runs `call` back to back until `until.done`; how many times it ran. */
async function loop(call: () => Promise<void>, until: { done: boolean }): Promise<number> {
  let n = 0;
  while (!until.done) {
    await call();
    n++;
  }
  return n;
}

/** Resolves once every call the gateway answered is stored. */
async function stored(t: Target): Promise<void> {
  for (;;) {
    const { json } = await adminRequest(t, "GET", "/readyz");
    if (json.recorder_pending === 0 && json.spool_depth === 0) return;
    await pause(50);
  }
}

/** A budget on USER's calls, far from its limit. */
async function createBudget(t: Target, id: string, window: string): Promise<void> {
  const created = await adminRequest(t, "POST", "/api/budgets", {
    id,
    scope: { user_id: USER },
    window,
    limit_usd: "100000",
  });
  expect(created.status).toBe(201);
}

/** Creates a budget on USER's calls amid ingest and gateway traffic; reads it `settleMs` after the last call is stored. */
async function createUnderLoad(t: Target, settleMs = 0): Promise<{ budget: Json; storedCost: string }> {
  const stop = { done: false };
  const loops = [
    ...Array.from({ length: 4 }, () => loop(() => ingestBatch(t), stop)),
    ...Array.from({ length: 6 }, () => loop(() => streamedCall(t), stop)),
  ];
  await pause(400);
  await createBudget(t, "under-load", "lifetime");
  await pause(400);
  stop.done = true;
  expect((await Promise.all(loops)).every((n) => n > 0)).toBe(true);
  await stored(t);
  await pause(settleMs);
  const spend = await adminRequest(t, "GET", `/api/spend?by=user_id&user_id=${USER}&from=7d`);
  expect(spend.json.rows).toHaveLength(1);
  return {
    budget: (await adminRequest(t, "GET", "/api/budgets/under-load")).json,
    storedCost: spend.json.rows[0].cost_nanousd,
  };
}

describe("a budget created under load", () => {
  for (const [name, open] of [
    ["in-process", inProcess],
    ["tollgate serve, store thread", served],
  ] as const)
    it(`counts every call of its window once, however the seed and the traffic interleave (${name})`, async () => {
      const t = await open();
      try {
        const { budget, storedCost } = await createUnderLoad(t);
        expect(BigInt(storedCost)).toBeGreaterThan(0n);
        expect(budget.reserved_nanousd).toBe("0");
        expect(budget.spend_nanousd).toBe(storedCost);
      } finally {
        await t.stop();
      }
    });
});

describe("a budget created while running, on Redis (counters shared by replicas)", () => {
  let redis: TestRedis;
  const env = { ...process.env };
  beforeAll(async () => {
    redis = await startRedis();
    // A grace period of 2 refreshes (200 ms), then the seed read again 0.1, 0.6 and 1.5 s after it.
    process.env.TOLLGATE_POLICY_REFRESH_MS = "100";
    process.env.TOLLGATE_BUDGET_SEED_PASSES_MS = "100,600,1500";
  });
  afterAll(async () => {
    process.env = env;
    await redis?.stop();
  });
  const onRedis = async () => {
    await redis.stop(); // a fresh Redis for each server: counters of the same budget ids start empty
    redis = await startRedis();
    const gw = await startTestGateway(mock.url, {}, { redisUrl: redis.url });
    return gw;
  };

  it("counts the spend its window held before it was added, at once", async () => {
    const t = await onRedis();
    try {
      await ingestBatch(t);
      await ingestBatch(t);
      const spend = await adminRequest(t, "GET", `/api/spend?by=user_id&user_id=${USER}&from=7d`);
      await createBudget(t, "before", "day");
      const budget = (await adminRequest(t, "GET", "/api/budgets/before")).json;
      expect(BigInt(budget.spend_nanousd)).toBeGreaterThan(0n);
      expect(budget.spend_nanousd).toBe(spend.json.rows[0].cost_nanousd);
    } finally {
      await t.stop();
    }
  });

  it("counts every call of its window once under load, once its seed is read for the last time", async () => {
    const t = await onRedis();
    try {
      const { budget, storedCost } = await createUnderLoad(t, 1_800);
      expect(BigInt(storedCost)).toBeGreaterThan(0n);
      expect(budget.spend_nanousd).toBe(storedCost);
    } finally {
      await t.stop();
    }
  });
});

describe("a budget created while a call is in flight", () => {
  it("counts the call, admitted before it existed, once it ends (no budget at all then; another one then)", async () => {
    const slow = await startMockUpstream({ chunkDelayMs: 60 });
    const gw = await startTestGateway(slow.url);
    const t: Target = gw;
    /** Starts a streamed call as `user` and resolves once the upstream has it (it is admitted). */
    const inFlight = async (user: string) => {
      const sent = slow.requests.length;
      const done = fetch(`${t.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer sk-test",
          "x-tollgate-user-id": user,
        },
        body: JSON.stringify({
          model: "gpt-4.1-nano",
          stream: true,
          messages: [{ role: "user", content: "hi" }],
        }),
      }).then((res) => res.text());
      while (slow.requests.length === sent) await pause(5);
      return done;
    };
    const budget = (id: string, user: string) =>
      adminRequest(t, "POST", "/api/budgets", {
        id,
        scope: { user_id: user },
        window: "lifetime",
        limit_usd: "10",
      });
    const spendOf = async (id: string) =>
      (await adminRequest(t, "GET", `/api/budgets/${id}`)).json.spend_nanousd;
    try {
      const first = inFlight("first");
      expect((await budget("first", "first")).status).toBe(201);
      await first;
      // The second call is admitted under a budget: its ticket holds that one's bucket, not the new one's.
      expect(
        (
          await adminRequest(t, "POST", "/api/budgets", {
            id: "all",
            scope: { provider: "openai" },
            window: "day",
            limit_usd: "10",
          })
        ).status,
      ).toBe(201);
      const second = inFlight("second");
      expect((await budget("second", "second")).status).toBe(201);
      await second;
      await gw.runtime.recorder.flush();
      const records = await gw.runtime.store.query({ workspaceId: "default" });
      for (const user of ["first", "second"]) {
        const rec = records.find((r) => r.user_id === user)!;
        expect(rec.cost_nanousd).toBeGreaterThan(0n);
        expect(await spendOf(user)).toBe(rec.cost_nanousd.toString());
      }
    } finally {
      await t.stop();
      await slow.close();
    }
  });
});
