// Many gateways, one truth: two real `tollgate serve` processes share caps and kill switches through Redis.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { usdToNano } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Json, okOrCode, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { startRedis, type TestRedis } from "./redis-server.js";

const CLI = fileURLToPath(new URL("../bin/tollgate.js", import.meta.url));
const LONG_PROMPT = "lorem ipsum dolor sit amet ".repeat(600);
const CACHE_WRITE = "openai/chat-completion.gpt-5.6-sol.cache-write.json";

interface Gateway {
  url: string;
  token: string;
  dataDir: string;
  proc: ChildProcess;
}

let redis: TestRedis;
let mock: MockUpstream;
let dir: string;
const gateways: Gateway[] = [];

async function spawnGateway(limitsFile: string): Promise<Gateway> {
  const dataDir = mkdtempSync(join(dir, "gw-"));
  const proc = spawn(
    process.execPath,
    [CLI, "--data-dir", dataDir, "--limits", limitsFile, "--redis", redis.url, "serve", "--port", "0"],
    {
      env: { ...process.env, TOLLGATE_OPENAI_BASE_URL: `${mock.url}/v1` },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const info = join(dataDir, "server.json");
  const deadline = Date.now() + 30_000;
  while (!existsSync(info)) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error("gateway did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  const { url, token } = JSON.parse(readFileSync(info, "utf8"));
  return { url, token, dataDir, proc };
}

beforeAll(async () => {
  if (!existsSync(CLI.replace("bin/tollgate.js", "dist/cli.js")))
    throw new Error("build first: npm run build");
  redis = await startRedis();
  mock = await startMockUpstream();
  dir = mkdtempSync(join(tmpdir(), "tollgate-redis-"));
  const limits = join(dir, "limits.yaml");
  writeFileSync(
    limits,
    [
      "budgets:",
      '  - { id: shared-cap, scope: { user_id: u-shared }, window: day, limit_usd: "1.00" }',
      '  - { id: bg-cap, scope: { user_id: u-bg }, window: day, limit_usd: "100.00" }',
      "agents:",
      '  fleet-agent: { max_cost_usd: "0.05" }',
    ].join("\n"),
  );
  gateways.push(await spawnGateway(limits), await spawnGateway(limits));
});

afterAll(async () => {
  for (const g of gateways) {
    g.proc.kill("SIGTERM");
    await new Promise((r) => g.proc.once("exit", r));
  }
  await mock?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const api = async (g: Gateway, path: string): Promise<Json> =>
  (await fetch(g.url + path, { headers: { authorization: `Bearer ${g.token}` } })).json();

/** Spend recorded in a gateway's own event store for a user (waits for its recorder to store them). */
async function storedSpend(
  g: Gateway,
  user: string,
  expectCalls: number,
): Promise<{ calls: number; cost: bigint }> {
  for (let i = 0; i < 100; i++) {
    const { events } = await api(g, `/api/events?user_id=${user}&limit=10000`);
    if (events.length >= expectCalls)
      return {
        calls: events.length,
        cost: events.reduce((a: bigint, e: Json) => a + BigInt(e.cost_nanousd), 0n),
      };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("records did not arrive");
}

/** One openai client per gateway, sending `headers`. */
const clientsOf = (headers: Record<string, string>) =>
  gateways.map(
    (g) => new OpenAI({ apiKey: "sk-test", baseURL: `${g.url}/v1`, maxRetries: 0, defaultHeaders: headers }),
  );

describe("two gateway processes sharing Redis", () => {
  it("200 concurrent calls spread over both against one $1.00 cap: total spend never exceeds it", async () => {
    const clients = clientsOf({ "x-tollgate-user-id": "u-shared", "x-mock-fixture": CACHE_WRITE });
    const call = (i: number): Promise<{ ok: boolean; i: number; e?: Json }> =>
      clients[i % 2]!.chat.completions.create({
        model: "gpt-5.6-sol",
        max_completion_tokens: 64,
        messages: [{ role: "user", content: LONG_PROMPT }],
      }).then(
        () => ({ ok: true, i }),
        (e) => ({ ok: false, i, e }),
      );
    const first = await Promise.all(Array.from({ length: 200 }, (_, i) => call(i)));
    const more = [];
    for (let i = 0; i < 60; i++) more.push(await call(i));
    const all = [...first, ...more];
    const ok = all.filter((r) => r.ok);
    for (const r of all.filter((x) => !x.ok)) {
      const e = r.e;
      expect(e).toBeInstanceOf(OpenAI.RateLimitError);
      expect(e.code).toBe("budget_exceeded");
    }
    // both gateways admitted calls, and their stores together hold exactly the admitted ones
    const perGateway = [0, 1].map((k) => ok.filter((r) => r.i % 2 === k).length);
    expect(Math.min(...perGateway)).toBeGreaterThan(0);
    const stored = await Promise.all(gateways.map((g, k) => storedSpend(g, "u-shared", perGateway[k]!)));
    const total = stored[0]!.cost + stored[1]!.cost;
    expect(stored[0]!.calls + stored[1]!.calls).toBe(ok.length);
    expect(total <= usdToNano("1.00")).toBe(true);
    expect(total > usdToNano("0.90")).toBe(true);
    // either gateway reports the shared truth from Redis
    for (const g of gateways) {
      const status = await api(g, "/api/budgets/shared-cap");
      expect(BigInt(status.spend_nanousd)).toBe(total);
      expect(status.reserved_usd).toBe("0.00");
    }
  });

  it("an agent run hopping between gateways is killed once, for both, at its ceiling", async () => {
    const headers = { "x-tollgate-agent-run-id": "fleet-run-1", "x-tollgate-agent-type": "fleet-agent" };
    const clients = clientsOf(headers);
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++)
      outcomes.push(
        await okOrCode(
          clients[i % 2]!.chat.completions.create({
            model: "o3-mini",
            max_completion_tokens: 3000,
            messages: [{ role: "user", content: `step ${i}` }],
          }),
        ),
      );
    // $0.0108427 a call: the 5th crosses $0.05, every later call on either gateway is refused
    expect(outcomes).toEqual([...Array(5).fill("ok"), ...Array(5).fill("agent_run_killed")]);
    for (const g of gateways) expect((await api(g, "/api/runs/fleet-run-1")).state).toBe("killed");
  });

  it("a run's parallel calls spread over both gateways hold their worst case: they take turns near its ceiling, which is crossed once, as in a loop", async () => {
    const headers = {
      "x-tollgate-agent-run-id": "fleet-fan-out",
      "x-tollgate-agent-type": "fleet-agent",
      "x-mock-headers-delay-ms": "200",
    };
    const clients = clientsOf(headers);
    const call = (i: number) =>
      okOrCode(
        clients[i % 2]!.chat.completions.create({
          model: "o3-mini",
          max_completion_tokens: 3000,
          messages: [{ role: "user", content: `branch ${i}` }],
        }),
      );
    // ~$0.0133 held a call: four fit under $0.05 at once, wherever they are admitted; the rest wait, and the
    // fifth to run crosses the ceiling: the waiting five are refused by the kill.
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => call(i)));
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(5);
    expect(outcomes.filter((o) => o === "agent_run_killed")).toHaveLength(5);
    const run = await api(gateways[0]!, "/api/runs/fleet-fan-out");
    expect(run).toMatchObject({ state: "killed", usage: { llm_calls: 5, cost_nanousd: "54213500" } });
  });

  it("a background response found finished by polls through both at once is charged once", async () => {
    const clients = clientsOf({ "x-tollgate-user-id": "u-bg", "x-mock-case": "bg-two-replicas" });
    const submitted = await clients[0]!.responses.create({ model: "gpt-5", input: "go", background: true });
    expect((await clients[0]!.responses.retrieve(submitted.id)).status).toBe("in_progress");
    // Finished now: four polls at once, two through each gateway (each has its own event store here).
    const polls = await Promise.all([0, 1, 0, 1].map((k) => clients[k]!.responses.retrieve(submitted.id)));
    expect(polls.map((p) => p.status)).toEqual(Array(4).fill("completed"));
    // One of them records it, in its gateway's store; the budget counts that record's cost, once.
    const llmRecords = async () =>
      (await Promise.all(gateways.map((g) => api(g, `/api/events?request_id=${submitted.id}`))))
        .flatMap((f) => f.events as Json[])
        .filter((e) => e.kind === "llm");
    let records: Json[] = [];
    for (let i = 0; i < 50 && records.length === 0; i++) {
      records = await llmRecords();
      if (!records.length) await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 300)); // a second record, were there one, would be stored by now
    records = await llmRecords();
    expect(records).toHaveLength(1);
    expect(records[0]!.request_id).toBe(submitted.id);
    expect(BigInt(records[0]!.cost_nanousd)).toBeGreaterThan(0n);
    for (const g of gateways) {
      const status = await api(g, "/api/budgets/bg-cap");
      expect(status.spend_nanousd).toBe(records[0]!.cost_nanousd);
      expect(status.reserved_usd).toBe("0.00");
    }
  });
});

describe("Redis unreachable", () => {
  let r2: TestRedis;
  let gw: Awaited<ReturnType<typeof startTestGateway>>;
  beforeAll(async () => {
    r2 = await startRedis();
    gw = await startTestGateway(mock.url, {}, { redisUrl: r2.url });
  });
  afterAll(async () => {
    await gw?.stop();
    await r2?.stop();
  });

  it("fail_open budgets let calls through (with an alert event); fail_closed ones refuse with 503", async () => {
    const post = (body: unknown) =>
      fetch(`${gw.url}/api/budgets`, {
        method: "POST",
        headers: { authorization: `Bearer ${gw.runtime.rootToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    await post({ id: "open", scope: { feature: "open" }, window: "day", limit_usd: "5" });
    await post({
      id: "closed",
      scope: { feature: "closed" },
      window: "day",
      limit_usd: "5",
      fail_mode: "fail_closed",
    });
    const call = (feature: string) =>
      new OpenAI({
        apiKey: "sk",
        baseURL: `${gw.url}/v1`,
        maxRetries: 0,
        defaultHeaders: { "x-tollgate-feature": feature },
      }).chat.completions
        .create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] })
        .then(
          () => "ok",
          (e) => `${e.status} ${e.code}`,
        );
    expect([await call("open"), await call("closed")]).toEqual(["ok", "ok"]);
    await r2.stop();
    expect(await call("open")).toBe("ok");
    expect(await call("closed")).toBe("503 limits_unavailable");
    const events: Json = await (
      await fetch(`${gw.url}/api/limit-events?type=limits_unavailable`, {
        headers: { authorization: `Bearer ${gw.runtime.rootToken}` },
      })
    ).json();
    expect(events.events[0]).toMatchObject({ subject: "redis", type: "limits_unavailable" });
  });
});
