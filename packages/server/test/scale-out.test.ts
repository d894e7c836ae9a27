// Scale-out acceptance: two `tollgate serve --role gateway` processes and one `--role worker` on one
// ClickHouse and one Redis. 50,000 calls go through both gateways with a per-user budget applying: every
// admitted call is stored exactly once, the caps hold, and the rollups equal the embedded store's answers
// for the same calls.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { type CallRecord, extractFromResponse, formatUsd, PricingEngine, usdToNano } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { explainChange } from "../src/query/explain.js";
import { customerRollup, featureRollup, previousWindow, userDayRollup } from "../src/query/rollups.js";
import { openClickHouse } from "../src/store/clickhouse/open.js";
import type { ClickHouseStore } from "../src/store/clickhouse/store.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { startClickHouse, type TestClickHouse } from "./clickhouse-server.js";
import { FX, fixture, type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { startRedis, type TestRedis } from "./redis-server.js";

const CLI = fileURLToPath(new URL("../bin/tollgate.js", import.meta.url));
const CALLS = 50_000;
const CONCURRENCY = 48;
const USERS = 40;
const CAPPED_USERS = 8;
/** TOLLGATE_BACKGROUND_FOLLOW_MS of the gateways: well after a background response is polled and recorded. */
const FOLLOW_MS = 5_000;
/** Each capped user may spend this many calls' worth a day. */
const CAP_CALLS = 120;

interface Proc {
  url: string;
  token: string;
  proc: ChildProcess;
}

let ch: TestClickHouse;
let redis: TestRedis;
let mock: MockUpstream;
let dir: string;
let store: ClickHouseStore;
const procs: Proc[] = [];

/** The cost of one call of the mock's default chat reply, priced as the gateway prices it. */
const engine = new PricingEngine();
const ex = extractFromResponse("openai.chat", JSON.parse(fixture(FX.chat)));
const perCall = engine.price({ provider: "openai", model: ex.model!, usage: ex.usage, at: Date.now() }).cost
  .total_nanousd;
const capNano = perCall * BigInt(CAP_CALLS);

async function spawnServe(role: "gateway" | "worker" | "api", limits: string): Promise<Proc> {
  const dataDir = mkdtempSync(join(dir, `${role}-`));
  const proc = spawn(
    process.execPath,
    [
      CLI,
      "--data-dir",
      dataDir,
      "--limits",
      limits,
      "--redis",
      redis.url,
      "serve",
      "--port",
      "0",
      "--role",
      role,
    ],
    {
      env: {
        ...process.env,
        TOLLGATE_CLICKHOUSE_URL: `${ch.url}/tg_scale`,
        TOLLGATE_OPENAI_BASE_URL: `${mock.url}/v1`,
        TOLLGATE_RAW_RETENTION_DAYS: "400",
        TOLLGATE_POLICY_REFRESH_MS: "300",
        // A background response's submitter polls it itself this long after (or after a client's poll).
        TOLLGATE_BACKGROUND_FOLLOW_MS: String(FOLLOW_MS),
      },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const info = join(dataDir, "server.json");
  const deadline = Date.now() + 30_000;
  while (!existsSync(info)) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`${role} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const { url, token } = JSON.parse(readFileSync(info, "utf8"));
  return { url, token, proc };
}

beforeAll(async () => {
  if (!existsSync(CLI.replace("bin/tollgate.js", "dist/cli.js")))
    throw new Error("build first: npm run build");
  [ch, redis, mock] = await Promise.all([startClickHouse(), startRedis(), startMockUpstream()]);
  dir = mkdtempSync(join(tmpdir(), "tollgate-scale-"));
  const limits = join(dir, "limits.yaml");
  writeFileSync(
    limits,
    [
      "budgets:",
      // lifetime, not day: a run across midnight UTC starts a day window again, each user a second full cap
      // (a capped user's spend then ended at 2 × 119 calls, as the assertion below sums every day).
      `  - { id: capped-users, scope: { feature: capped, user_id: "*" }, window: lifetime, limit_usd: "${formatUsd(capNano, 9)}" }`,
    ].join("\n"),
  );
  // Four processes creating the schema at once: the DDL is idempotent.
  procs.push(
    ...(await Promise.all([
      spawnServe("worker", limits),
      spawnServe("gateway", limits),
      spawnServe("gateway", limits),
      spawnServe("api", limits),
    ])),
  );
  store = await openClickHouse({ url: `${ch.url}/tg_scale` });
}, 60_000);

afterAll(async () => {
  await Promise.all(
    procs.map(
      (p) =>
        new Promise((r) => {
          if (p.proc.exitCode !== null) return r(null);
          p.proc.once("exit", r);
          p.proc.kill("SIGTERM");
        }),
    ),
  );
  await store?.close();
  await mock?.close();
  await Promise.all([ch?.stop(), redis?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  status: number;
  eventId: string | null;
  user: string;
  capped: boolean;
}

/** The i-th call: every 5th is on the capped feature (by one of CAPPED_USERS), the rest spread over USERS. */
function request(i: number) {
  const capped = i % 5 === 0;
  const user = capped ? `u-${(i / 5) % CAPPED_USERS}` : `u-${(i * 7919) % USERS}`;
  return {
    user,
    capped,
    headers: {
      "content-type": "application/json",
      authorization: "Bearer sk-test",
      "x-tollgate-user-id": user,
      "x-tollgate-customer-id": `c-${(i * 31) % 9}`,
      "x-tollgate-feature": capped ? "capped" : ["chat", "search", "summarize"][i % 3]!,
      "x-tollgate-prompt-version": i < CALLS / 2 ? "v1" : "v2",
    },
  };
}

async function drive(gateways: Proc[]): Promise<Outcome[]> {
  const out: Outcome[] = new Array(CALLS);
  let next = 0;
  const body = JSON.stringify({
    model: "gpt-4.1-nano",
    // At least the recorded reply's 363 output tokens: a provider never bills past the call's maximum,
    // and the gateway reserves that worst case.
    max_completion_tokens: 400,
    messages: [{ role: "user", content: "hello" }],
  });
  const worker = async () => {
    for (let i = next++; i < CALLS; i = next++) {
      const { user, capped, headers } = request(i);
      const res = await fetch(`${gateways[i % 2]!.url}/v1/chat/completions`, {
        method: "POST",
        headers,
        body,
      });
      await res.arrayBuffer();
      out[i] = { status: res.status, eventId: res.headers.get("x-tollgate-event-id"), user, capped };
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return out;
}

/** GET /api/events/:id on a process, asked again while it is 404 (stored within about a second). */
async function lookUp(proc: Proc, eventId: string, token: string): Promise<Response> {
  for (const deadline = Date.now() + 10_000; ; await sleep(100)) {
    const res = await fetch(`${proc.url}/api/events/${eventId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (res.status !== 404 || Date.now() > deadline) return res;
    await res.arrayBuffer();
  }
}

/** Every record of the workspace, paged through the store. */
async function allRecords(): Promise<CallRecord[]> {
  const out: CallRecord[] = [];
  for (;;) {
    const last = out.at(-1);
    const page = await store.query({
      workspaceId: "default",
      limit: 20_000,
      ...(last ? { after: { ts: last.ts_start, id: last.event_id } } : {}),
    });
    out.push(...page);
    if (page.length < 20_000) return out;
  }
}

describe("two gateways and a worker on one ClickHouse and one Redis", () => {
  let outcomes: Outcome[];
  let records: CallRecord[];
  /** Calls the tests before the 50,000 made and that were answered (so stored too). */
  let callsBefore = 0;
  /** Records the tests before the 50,000 stored beside their calls' (a background response's own). */
  let recordsBesideCalls = 0;

  it("a budget set through the API replica reaches both gateways, and holds", async () => {
    const [api, ...gateways] = [procs[3]!, procs[1]!, procs[2]!];
    const limit = perCall * 30n;
    const res = await fetch(`${api.url}/api/budgets`, {
      method: "POST",
      headers: { authorization: `Bearer ${api.token}`, "content-type": "application/json" },
      body: JSON.stringify({
        id: "late-cap",
        scope: { feature: "late" },
        window: "lifetime", // not day: as capped-users above
        limit_usd: formatUsd(limit, 9),
      }),
    });
    expect(res.status, await res.text()).toBe(201);
    await new Promise((r) => setTimeout(r, 1_000)); // a few policy refreshes
    const body = JSON.stringify({
      model: "gpt-4.1-nano",
      max_completion_tokens: 400,
      messages: [{ role: "user", content: "hi" }],
    });
    const statuses: number[] = [];
    let first: { eventId: string; cost: string } | null = null;
    for (let i = 0; i < 60; i++) {
      const r = await fetch(`${gateways[i % 2]!.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer sk-test",
          "x-tollgate-feature": "late",
        },
        body,
      });
      await r.arrayBuffer();
      statuses.push(r.status);
      first ??= {
        eventId: r.headers.get("x-tollgate-event-id")!,
        cost: r.headers.get("x-tollgate-cost-usd")!,
      };
    }
    const ok = statuses.filter((s) => s === 200).length;
    expect(ok).toBeGreaterThanOrEqual(24);
    expect(ok).toBeLessThanOrEqual(30);
    expect(statuses.slice(ok).every((s) => s === 429)).toBe(true);
    callsBefore += ok;
    // A replica looks up a call by its id, the one another replica answered too: the cost its reply said.
    const found = await lookUp(gateways[1]!, first!.eventId, gateways[1]!.token);
    expect(found.status).toBe(200);
    expect(await found.json()).toMatchObject({ event: { event_id: first!.eventId }, cost_usd: first!.cost });
  });

  it("a gateway key reads the call it made through one replica on another, and no other call", async () => {
    const [api, ...gateways] = [procs[3]!, procs[1]!, procs[2]!];
    const created = await fetch(`${api.url}/api/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${api.token}`, "content-type": "application/json" },
      body: JSON.stringify({ workspace: "default", role: "gateway", label: "lookup" }),
    });
    expect(created.status).toBe(201);
    const key = ((await created.json()) as { key: string }).key;
    const call = (headers: Record<string, string>) =>
      fetch(`${gateways[0]!.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sk-test", ...headers },
        body: JSON.stringify({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "mine" }] }),
      });
    const mine = await call({ "x-tollgate-key": key });
    const theirs = await call({});
    await Promise.all([mine.arrayBuffer(), theirs.arrayBuffer()]);
    expect([mine.status, theirs.status]).toEqual([200, 200]);
    callsBefore += 2;
    const id = mine.headers.get("x-tollgate-event-id")!;
    const found = await lookUp(gateways[1]!, id, key);
    expect(found.status).toBe(200);
    expect(await found.json()).toMatchObject({
      event: { event_id: id },
      cost_usd: mine.headers.get("x-tollgate-cost-usd"),
    });
    // Stored too (looked up with the root token), but not made with this key: not found for it.
    const other = theirs.headers.get("x-tollgate-event-id")!;
    expect((await lookUp(gateways[1]!, other, gateways[1]!.token)).status).toBe(200);
    const refused = await fetch(`${gateways[1]!.url}/api/events/${other}`, {
      headers: { authorization: `Bearer ${key}` },
    });
    expect(refused.status).toBe(404);
  });

  it("a background response submitted through one gateway and polled through the other is recorded once, for its submission", async () => {
    const [submitter, poller] = [procs[1]!, procs[2]!];
    const submittedAt = Date.now();
    const call = (proc: Proc, method: string, path: string, headers: Record<string, string>, body?: object) =>
      fetch(`${proc.url}${path}`, {
        method,
        headers: { "content-type": "application/json", authorization: "Bearer sk-test", ...headers },
        body: body && JSON.stringify(body),
      });
    const submitted = await call(
      submitter,
      "POST",
      "/v1/responses",
      {
        "x-mock-case": "bg-scale",
        "x-tollgate-feature": "bg-scale",
        "x-tollgate-agent-run-id": "bg-scale-run",
      },
      { model: "gpt-5", input: "go", background: true },
    );
    const { id } = (await submitted.json()) as { id: string };
    const recordsOf = () => store.query({ workspaceId: "default", where: { request_id: id }, limit: 100 });
    // The poller finds the submission in the one store (it is stored within about a second).
    for (const deadline = Date.now() + 10_000; (await recordsOf()).length === 0 && Date.now() < deadline; )
      await sleep(100);
    // Polled without attribution, through the replica that did not see the submission.
    const statuses: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await call(poller, "GET", `/v1/responses/${id}`, { "x-mock-case": "bg-scale" });
      statuses.push(((await res.json()) as { status: string }).status);
    }
    expect(statuses).toEqual(["in_progress", "completed", "completed"]);
    let llm: CallRecord[] = [];
    for (const deadline = Date.now() + 10_000; llm.length === 0 && Date.now() < deadline; await sleep(100))
      llm = (await recordsOf()).filter((r) => r.kind === "llm");
    await sleep(1_500); // a second record, were there one, would be stored by now
    const all = await recordsOf();
    expect(all.filter((r) => r.kind === "llm")).toHaveLength(1);
    expect(all.filter((r) => r.kind === "llm")[0]).toMatchObject({
      feature: "bg-scale",
      agent_run_id: "bg-scale-run",
      status: "ok",
    });
    expect(all.map((r) => r.kind).sort()).toEqual(["llm", "other"]); // the response, its submission
    // The submitter's own poll, past its turn, found it recorded by the other replica: nothing asked upstream.
    await sleep(Math.max(0, submittedAt + FOLLOW_MS + 1_000 - Date.now()));
    expect(mock.requests.filter((r) => r.headers["x-mock-case"] === "bg-scale")).toHaveLength(4);
    callsBefore += 4;
    recordsBesideCalls += 1;
  });

  it.runIf(existsSync("/proc/self/maps"))(
    "no process on ClickHouse loads DuckDB (~20 MB of RSS a replica would carry)",
    () => {
      // Before the gateways are stopped below; each has served and recorded calls by now.
      for (const p of procs) {
        const maps = readFileSync(`/proc/${p.proc.pid}/maps`, "utf8");
        expect(maps).toContain(process.execPath); // the probe reads the live process
        expect(maps).not.toMatch(/libduckdb|duckdb\.node/);
      }
    },
  );

  it("50,000 calls through both gateways: each admitted call stored exactly once, caps hold", async () => {
    const gateways = procs.slice(1, 3);
    outcomes = await drive(gateways);
    const ok = outcomes.filter((o) => o.status === 200);
    const refused = outcomes.filter((o) => o.status !== 200);
    // Only capped calls are refused, and only with the budget's 429.
    expect(refused.every((o) => o.capped && o.status === 429)).toBe(true);
    expect(refused.length).toBeGreaterThan(0);
    expect(ok.length + callsBefore).toBe(mock.requests.length);
    // Gateways store on shutdown at the latest: stop them, then read the one truth.
    for (const g of gateways) {
      const exited = new Promise((r) => g.proc.once("exit", r));
      g.proc.kill("SIGTERM");
      await exited;
    }
    records = await allRecords();
    const stored = new Map(records.map((r) => [r.event_id, r]));
    expect(stored.size).toBe(records.length); // no event twice
    expect(records.length).toBe(ok.length + callsBefore + recordsBesideCalls);
    for (const o of ok) expect(stored.has(o.eventId!)).toBe(true);
    // Per capped user: spend never above the cap, and the cap was used (not refused far too early).
    for (let u = 0; u < CAPPED_USERS; u++) {
      const spent = records
        .filter((r) => r.user_id === `u-${u}` && r.feature === "capped")
        .reduce((a, r) => a + r.cost_nanousd, 0n);
      expect(spent <= capNano, `u-${u}: ${spent} > ${capNano}`).toBe(true);
      expect(spent * 10n >= capNano * 8n, `u-${u}: ${spent} of ${capNano}`).toBe(true);
    }
    expect(perCall > 0n && capNano < usdToNano("1")).toBe(true);
    console.info(
      `scale-out: ${ok.length} calls stored once each, ${refused.length} refused at the caps (${CAPPED_USERS} users × ${CAP_CALLS} calls' worth)`,
    );
  }, 240_000);

  it("the worker holds the job lease", async () => {
    const ready = (await (await fetch(`${procs[0]!.url}/readyz`)).json()) as { jobs: { lease: string } };
    expect(ready.jobs.lease).toBe("held");
  });

  it("rollups from ClickHouse equal the embedded store's for the same calls", async () => {
    expect(records?.length).toBeGreaterThan(0);
    const duck = await DuckDbStore.open(mkdtempSync(join(dir, "duck-")));
    try {
      for (let i = 0; i < records.length; i += 10_000) await duck.append(records.slice(i, i + 10_000));
      const to = Date.now() + 60_000;
      const w = { workspaceId: "default", from: to - 2 * 86_400_000, to, deploymentOrUnset: "prod" };
      const plain = (v: unknown) =>
        JSON.parse(JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x)));
      for (const q of [
        (s: DuckDbStore | ClickHouseStore) => userDayRollup(s, w, 5),
        (s: DuckDbStore | ClickHouseStore) => featureRollup(s, w),
        (s: DuckDbStore | ClickHouseStore) => customerRollup(s, w, to),
        (s: DuckDbStore | ClickHouseStore) => explainChange(s, w, previousWindow(w)),
        (s: DuckDbStore | ClickHouseStore) => s.spend(w, "user_id"),
        (s: DuckDbStore | ClickHouseStore) => s.spend(w, "prompt_version"),
      ])
        expect(plain(await q(store))).toEqual(plain(await q(duck)));
    } finally {
      await duck.close();
    }
  });
});
