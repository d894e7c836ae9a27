// Every rollup, the variance split and the forecast, cross-checked against a naive in-memory computation
// over the same stored records (exact integer money; percentiles by nearest rank).
import { type CallRecord, nearestRank, roundHalfUp, sortBigints } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateDemo } from "../src/demo/generate.js";
import { getJson, type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

const DAY = 86_400_000;
let rt: Awaited<ReturnType<typeof openTestRuntime>>;
let all: CallRecord[];
const now = Date.now();
const to = Math.floor(now / DAY) * DAY; // today 00:00 UTC: whole days only
const from = to - 14 * DAY;
const iso = (ms: number) => new Date(ms).toISOString();
const range = `from=${iso(from)}&to=${iso(to)}`;

beforeAll(async () => {
  rt = await openTestRuntime();
  const records = [...generateDemo({ days: 30, callsPerDay: 250, seed: 7, now })].map((r, i) => ({
    ...r,
    // real traffic (the analytics default), with some staging and some without a deployment
    data_mode: "real",
    ...(i % 11 === 0 ? { deployment: undefined } : {}),
  }));
  for (let i = 0; i < records.length; i += 5000) {
    const res = await postEvents(rt.app, rt.rootToken, records.slice(i, i + 5000));
    expect(res.json.rejected).toBe(0);
  }
  all = await rt.store.query({ workspaceId: "default", limit: 100_000 });
  expect(all.length).toBe(records.length);
}, 120_000);
afterAll(() => rt?.close());

const api = async (path: string): Promise<Json> => {
  const res = await getJson(rt.app, rt.rootToken, path);
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  return res.json;
};

/** The analytics defaults, naively: real data, prod or no deployment, model calls, in [a, b). */
const inWindow = (r: CallRecord, a = from, b = to) =>
  r.ts_start >= a &&
  r.ts_start < b &&
  r.data_mode === "real" &&
  (r.deployment === "prod" || r.deployment === null);
const modelCall = (r: CallRecord) => r.kind === "llm" || r.kind === "embedding";
const sum = (rs: CallRecord[]) => rs.reduce((a, r) => a + r.cost_nanousd, 0n);
/**
 * Requests, naively: a request is where its first attempt is (a retry storm crossing midnight counts on
 * the day it started), so count first attempts; one succeeded when an attempt has status ok.
 */
const requests = (rs: CallRecord[]) => rs.filter((r) => r.attempt === 1).length;
const succeeded = (rs: CallRecord[]) => rs.filter((r) => r.status === "ok").length;
function groupBy<K>(rs: CallRecord[], key: (r: CallRecord) => K): Map<K, CallRecord[]> {
  const m = new Map<K, CallRecord[]>();
  for (const r of rs) {
    const k = key(r);
    const list = m.get(k);
    if (list) list.push(r);
    else m.set(k, [r]);
  }
  return m;
}
const nano = (m: { nanousd: string }) => BigInt(m.nanousd);

describe("rollups against a naive computation", () => {
  it("cost per user per day: totals, users, nearest-rank percentiles, max and top users", async () => {
    const { days } = await api(`/api/rollups/user-day?${range}&top=3`);
    const calls = all.filter((r) => inWindow(r) && modelCall(r));
    const byDay = groupBy(calls, (r) => iso(r.ts_start).slice(0, 10));
    expect(days.map((d: Json) => d.day)).toEqual([...byDay.keys()].sort());
    for (const d of days) {
      const rs = byDay.get(d.day)!;
      const perUser = [
        ...groupBy(
          rs.filter((r) => r.user_id !== null),
          (r) => r.user_id,
        ),
      ].map(([u, xs]) => [u, sum(xs)] as const);
      const sorted = sortBigints(perUser.map(([, c]) => c));
      expect(nano(d.cost)).toBe(sum(rs));
      expect(d.users).toBe(perUser.length);
      expect(d.requests).toBe(requests(rs));
      expect(nano(d.median)).toBe(nearestRank(sorted, 50));
      expect(nano(d.p90)).toBe(nearestRank(sorted, 90));
      expect(nano(d.p99)).toBe(nearestRank(sorted, 99));
      expect(nano(d.max)).toBe(sorted.at(-1));
      expect(d.top_users.map((t: Json) => nano(t.cost))).toEqual(sorted.slice(-3).reverse());
    }
  });

  it("cost per feature request, with the previous window's figures", async () => {
    const { features } = await api(`/api/rollups/features?${range}`);
    const naive = (a: number, b: number) =>
      groupBy(
        all.filter((r) => inWindow(r, a, b) && modelCall(r)),
        (r) => r.feature,
      );
    const now = naive(from, to);
    const before = naive(from - (to - from), from);
    expect(features).toHaveLength(now.size);
    for (const f of features) {
      const rs = now.get(f.feature)!;
      const n = requests(rs);
      expect(f.requests).toBe(n);
      expect(nano(f.cost)).toBe(sum(rs));
      expect(nano(f.cost_per_request)).toBe(roundHalfUp(sum(rs), BigInt(n)));
      const prev = before.get(f.feature);
      expect(f.previous === null).toBe(prev === undefined);
      if (prev) expect(nano(f.previous.cost)).toBe(sum(prev));
    }
  });

  it("cost per agent run: runs, percentiles of run cost, max run, LLM and tool calls per run", async () => {
    const { agent_types } = await api(`/api/rollups/agent-runs?${range}`);
    const runs = groupBy(
      all.filter((r) => inWindow(r) && r.agent_run_id !== null),
      (r) => r.agent_run_id,
    );
    const costs = sortBigints([...runs.values()].map(sum));
    expect(agent_types).toHaveLength(1);
    const a = agent_types[0];
    expect(a).toMatchObject({ agent_type: "support-agent", runs: runs.size, killed_runs: 0 });
    expect(nano(a.median)).toBe(nearestRank(costs, 50));
    expect(nano(a.p99)).toBe(nearestRank(costs, 99));
    expect(nano(a.max)).toBe(costs.at(-1));
    expect(sum(runs.get(a.max_run_id)!)).toBe(costs.at(-1));
    const llm = [...runs.values()].reduce((n, rs) => n + rs.filter((r) => r.kind === "llm").length, 0);
    expect(a.llm_calls_per_run).toBeCloseTo(llm / runs.size, 9);
  });

  it("cost per customer: spend, share, requests, users; shares add up to 1", async () => {
    const { customers } = await api(`/api/rollups/customers?${range}`);
    const byCustomer = groupBy(
      all.filter((r) => inWindow(r) && modelCall(r)),
      (r) => r.customer_id,
    );
    const total = sum([...byCustomer.values()].flat());
    expect(customers).toHaveLength(byCustomer.size);
    for (const c of customers) {
      const rs = byCustomer.get(c.customer_id)!;
      expect(nano(c.cost)).toBe(sum(rs));
      expect(c.requests).toBe(requests(rs));
      expect(c.users).toBe(new Set(rs.map((r) => r.user_id).filter((u) => u !== null)).size);
      expect(c.share).toBeCloseTo(Number(sum(rs)) / Number(total), 5);
    }
    expect(customers.reduce((a: number, c: Json) => a + c.share, 0)).toBeCloseTo(1, 4);
  });

  it("cost per successful outcome by feature, model and prompt_version", async () => {
    for (const by of ["feature", "model", "prompt_version"] as const) {
      const { rows } = await api(`/api/rollups/outcomes?${range}&by=${by}`);
      const groups = groupBy(
        all.filter((r) => inWindow(r) && modelCall(r)),
        (r) => r[by],
      );
      expect(rows).toHaveLength(groups.size);
      for (const row of rows) {
        const rs = groups.get(row[by])!;
        const ok = succeeded(rs);
        expect(row.ok_requests, `${by}=${row[by]}`).toBe(ok);
        expect(nano(row.cost_per_success)).toBe(roundHalfUp(sum(rs), BigInt(ok)));
      }
    }
  });

  it("defaults and filters: data_mode=all and deployment=all widen, a customer filter narrows", async () => {
    const [def, everything, one] = await Promise.all([
      api(`/api/rollups/features?${range}`),
      api(`/api/rollups/features?${range}&deployment=all&data_mode=all`),
      api(`/api/rollups/features?${range}&customer_id=cust-001`),
    ]);
    const total = (x: Json) => x.features.reduce((a: bigint, f: Json) => a + nano(f.cost), 0n);
    const naiveAll = sum(all.filter((r) => r.ts_start >= from && r.ts_start < to && modelCall(r)));
    expect(total(everything)).toBe(naiveAll);
    expect(total(def) < total(everything)).toBe(true);
    expect(total(one)).toBe(
      sum(all.filter((r) => inWindow(r) && modelCall(r) && r.customer_id === "cust-001")),
    );
  });

  it("bad parameters are typed 400s naming the parameter", async () => {
    for (const [path, param] of [
      [`/api/rollups/user-day?top=0`, "top"],
      [`/api/rollups/outcomes?by=user_id`, "by"],
      [`/api/rollups/features?from=yesterday`, "from"],
      [`/api/rollups/features?from=${iso(to)}&to=${iso(from)}`, "to"],
      [`/api/variance?vs_from=bad`, "vs_from"],
      [`/api/export/calls?cursor=bm9wZQ`, "cursor"],
      [`/api/export/calls?limit=0`, "limit"],
    ]) {
      const res = await getJson(rt.app, rt.rootToken, path!);
      expect(res.status, path).toBe(400);
      expect(res.json.error.param).toBe(param);
    }
  });
});

describe("variance and forecast", () => {
  it("the narrative says when there is nothing to compare, and shows a change under a cent", async () => {
    const empty = await api(`/api/variance?${range}&feature=no-such-feature`);
    expect(empty.narrative[0]).toBe("No spend in either window.");
    // Another workspace: $0.000150 then $0.000170 (events with their own cost).
    const at = (ms: number, nanousd: string) =>
      validRecord({ ts_start: ms, feature: "tiny", data_mode: "real", cost_nanousd: nanousd });
    const res = await postEvents(
      rt.app,
      rt.rootToken,
      [at(from + DAY, "150000"), at(to - DAY, "170000")],
      "?workspace=tiny",
    );
    expect(res.json.accepted).toBe(2);
    const mid = to - 7 * DAY;
    const v = await api(
      `/api/variance?workspace=tiny&from=${iso(mid)}&to=${iso(to)}&vs_from=${iso(from)}&vs_to=${iso(mid)}`,
    );
    expect(v.narrative[0]).toMatch(/^Spend rose \+\$0\.000020 \(\+13\.3%\), from \$0\.00 to \$0\.00: /);
  });

  it("the split of the change adds up exactly, per driver and in total, and matches naive totals", async () => {
    const mid = to - 7 * DAY;
    const v = await api(
      `/api/variance?from=${iso(mid)}&to=${iso(to)}&vs_from=${iso(from)}&vs_to=${iso(mid)}`,
    );
    const after = sum(all.filter((r) => inWindow(r, mid, to) && modelCall(r)));
    const beforeCalls = all.filter((r) => inWindow(r, from, mid) && modelCall(r));
    const before = sum(beforeCalls);
    expect(nano(v.total.after.cost)).toBe(after);
    expect(nano(v.total.before.cost)).toBe(before);
    expect(nano(v.total.change)).toBe(after - before);
    expect(nano(v.total.volume) + nano(v.total.mix) + nano(v.total.rate)).toBe(after - before);
    for (const by of ["feature", "customer_id", "prompt_version", "model"] as const) {
      for (const s of v.drivers[by]) expect(nano(s.volume) + nano(s.mix) + nano(s.rate)).toBe(nano(s.change));
      // The listed drivers and the sum of the rest add up to the totals, and count every segment.
      const rows = [...v.drivers[by], v.drivers_other[by]];
      const add = (f: (r: Json) => { nanousd: string }) => rows.reduce((a, r) => a + nano(f(r)), 0n);
      expect(
        add((r) => r.before.cost),
        by,
      ).toBe(before);
      expect(
        add((r) => r.after.cost),
        by,
      ).toBe(after);
      expect(
        add((r) => r.change),
        by,
      ).toBe(after - before);
      expect(add((r) => r.volume) + add((r) => r.mix) + add((r) => r.rate), by).toBe(after - before);
      expect(
        rows.reduce((a, r) => a + r.before.requests, 0),
        by,
      ).toBe(requests(beforeCalls));
      const keys = new Set(
        all.filter((r) => inWindow(r, from, to) && (modelCall(r) || r.cost_nanousd > 0n)).map((r) => r[by]),
      );
      expect(v.drivers[by].length + v.drivers_other[by].segments, by).toBe(keys.size);
    }
    expect(v.drivers_other.customer_id.segments).toBeGreaterThan(0);
    expect(v.narrative[0]).toMatch(/^Spend (rose|fell) [+-]\$[\d,.]+ \([+-][\d.]+%\)/);
    expect(v.waste.current.retry_share).toBeGreaterThanOrEqual(0);
  });

  it("the summarize-v2 deploy is found: first seen, and its feature's cost per request jumped", async () => {
    const v = await api(
      `/api/variance?from=${iso(to - 20 * DAY)}&to=${iso(to)}&vs_from=${iso(to - 30 * DAY)}`,
    );
    const d = v.prompt_deploys.find((x: Json) => x.prompt_version === "summarize-v2");
    expect(d, JSON.stringify(v.prompt_deploys)).toBeDefined();
    expect(d.feature).toBe("summarize");
    expect(d.change).toBeGreaterThan(1); // 2.6× the tokens: well over +100%
    expect(v.narrative.join("\n")).toMatch(/prompt_version summarize-v2 \(feature summarize\)/);
  });

  it("forecast: month to date and the trailing run rate, naively", async () => {
    const f = await api(`/api/forecast`);
    const monthStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1);
    const today = to;
    const mtd = sum(all.filter((r) => inWindow(r, monthStart, Date.now() + 1) && modelCall(r)));
    expect(nano(f.workspace.to_date)).toBe(mtd);
    const week = sum(all.filter((r) => inWindow(r, today - 7 * DAY, today) && modelCall(r)));
    expect(nano(f.workspace.run_rate_per_day)).toBe(roundHalfUp(week, 7n));
    const complete = sum(all.filter((r) => inWindow(r, monthStart, today) && modelCall(r)));
    expect(nano(f.workspace.complete_days_to_date)).toBe(complete);
    // Today at no less than it has spent so far, the days after it at the run rate.
    const rate = roundHalfUp(week, 7n);
    const todaySoFar = mtd - complete;
    expect(nano(f.workspace.projected)).toBe(
      complete + (todaySoFar > rate ? todaySoFar : rate) + rate * BigInt(f.workspace.days_left - 1),
    );
    expect(nano(f.workspace.low) <= nano(f.workspace.projected)).toBe(true);
    expect(nano(f.workspace.low) >= mtd).toBe(true);
    expect(nano(f.workspace.high) >= nano(f.workspace.projected)).toBe(true);
    expect(f.customer_id.length).toBeGreaterThan(0);
  });

  it("budget burn-down: each bucket's remaining amount, its own run rate, days until exhausted", async () => {
    const res = await rt.app.request("/api/budgets", {
      method: "POST",
      headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        id: "per-customer",
        scope: { customer_id: "*" },
        window: "month",
        limit_usd: "5.00",
      }),
    });
    expect(res.status).toBe(201);
    const f = await api("/api/forecast");
    const bucket = f.budgets.find(
      (b: Json) => b.budget_id === "per-customer" && b.bucket.customer_id === "cust-001",
    );
    expect(bucket, JSON.stringify(f.budgets.slice(0, 3))).toBeDefined();
    // the budget counts everything of the customer (all data modes and deployments)
    const week = sum(
      all.filter((r) => r.customer_id === "cust-001" && r.ts_start >= to - 7 * DAY && r.ts_start < to),
    );
    expect(nano(bucket.run_rate_per_day)).toBe(roundHalfUp(week, 7n));
    const left = nano(bucket.remaining);
    const rate = nano(bucket.run_rate_per_day);
    expect(bucket.days_until_exhausted).toBe(left === 0n ? 0 : Number((left * 10n) / rate) / 10);
    expect(typeof bucket.exhausted_before_reset).toBe("boolean");
  });

  it("export pages: keyset cursors walk every call of the window exactly once, in order", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let total: number | null = null;
    do {
      const page: Json = await api(
        `/api/export/calls?${range}&limit=997${cursor ? `&cursor=${cursor}` : ""}`,
      );
      total ??= page.total;
      const idCol = page.columns.indexOf("event_id");
      for (const r of page.rows) seen.push(r[idCol]);
      cursor = page.next;
    } while (cursor);
    const naive = all.filter((r) => r.ts_start >= from && r.ts_start < to);
    expect(total).toBe(naive.length);
    expect(seen).toEqual(
      naive
        .sort((a, b) => a.ts_start - b.ts_start || (a.event_id < b.event_id ? -1 : 1))
        .map((r) => r.event_id),
    );
  });
});
