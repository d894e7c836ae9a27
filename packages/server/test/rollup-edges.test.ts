// Rollup answers on small hand-made sets of calls, one workspace per case: edge cases the generated data
// of rollups.test.ts does not make.
import { roundHalfUp, uuidv7 } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { budgetBurnDown } from "../src/query/burn-down.js";
import { forecastMonth } from "../src/query/forecast.js";
import { getJson, type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

const DAY = 86_400_000;
let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const now = Date.now();
const today = Math.floor(now / DAY) * DAY;
const iso = (ms: number) => new Date(ms).toISOString();

beforeAll(async () => {
  rt = await openTestRuntime();
});
afterAll(() => rt?.close());

const post = async (workspace: string, records: Record<string, unknown>[]) => {
  const res = await postEvents(rt.app, rt.rootToken, records, `?workspace=${workspace}`);
  expect(res.json.rejected, JSON.stringify(res.json)).toBe(0);
};
const api = async (path: string): Promise<Json> => {
  const res = await getJson(rt.app, rt.rootToken, path);
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  return res.json;
};

describe("a hosted tool's model call is spend, not another request", () => {
  // A Responses call whose image tool made an image: the tool's call is a record of its own (kind llm,
  // the response's attempt and request_id, status ok: billed whatever became of the response).
  const request = (ts: number, status: "ok" | "error") => {
    const main = validRecord({ ts_start: ts, feature: "draw", status, request_id: uuidv7() });
    const tool = validRecord({
      ts_start: ts,
      feature: "draw",
      status: "ok",
      request_id: main.request_id,
      parent_event_id: main.event_id,
      model: "gpt-image-1",
      api: "openai.images",
    });
    return [main, tool];
  };

  // Yesterday's calls arrive after their day closed (summed into segment_days), today's are raw.
  for (const [label, ts] of [
    ["a closed day", today - DAY + 3_600_000],
    ["an open day", now - 60_000],
  ] as const) {
    it(`counts one request per response, on ${label}`, async () => {
      const ws = `tool-${ts === now - 60_000 ? "open" : "closed"}`;
      await post(ws, [...request(ts, "ok"), ...request(ts + 1, "error")]);
      const range = `workspace=${ws}&from=${iso(today - DAY)}&to=${iso(now)}`;
      const { features } = await api(`/api/rollups/features?${range}`);
      expect(features).toHaveLength(1);
      expect(features[0].requests).toBe(2);
      const { rows } = await api(`/api/rollups/outcomes?${range}`);
      expect(rows[0]).toMatchObject({ requests: 2, ok_requests: 1, success_rate: 0.5 });
      const { customers } = await api(`/api/rollups/customers?${range}`);
      expect(customers[0].requests).toBe(2);
      const { days } = await api(`/api/rollups/user-day?${range}`);
      expect(days.reduce((a: number, d: Json) => a + d.requests, 0)).toBe(2);
    });
  }
});

describe("a `to` alone", () => {
  it("ends the default 30-day window: no 400 about a `from` never given", async () => {
    const ws = "to-alone";
    const end = today - 40 * DAY;
    await post(ws, [
      validRecord({ ts_start: end - 10 * DAY, feature: "old" }),
      validRecord({ ts_start: end - 31 * DAY, feature: "older" }),
    ]);
    const { window, features } = await api(`/api/rollups/features?workspace=${ws}&to=${iso(end)}`);
    expect(window).toEqual({ from: iso(end - 30 * DAY), to: iso(end) });
    expect(features.map((f: Json) => f.feature)).toEqual(["old"]);
    const page = await api(`/api/export/calls?workspace=${ws}&to=${iso(end)}`);
    expect(page.window).toEqual({ from: iso(end - 30 * DAY), to: iso(end) });
    expect(page.rows).toHaveLength(1);
  });
});

describe("variance windows", () => {
  const thisMonth = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1);
  const lastMonth = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth() - 1, 1);
  const monthBefore = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth() - 2, 1);
  const ws = "variance-to";
  beforeAll(() =>
    post(ws, [
      validRecord({ ts_start: monthBefore + DAY, output_tokens: 10 }),
      validRecord({ ts_start: lastMonth + DAY, output_tokens: 30 }),
      validRecord({ ts_start: lastMonth + 20 * DAY, output_tokens: 50 }),
    ]),
  );
  const cost = async (ts: number) => {
    const { events } = await api(`/api/events?workspace=${ws}&from=${iso(ts)}&to=${iso(ts + 1)}`);
    return BigInt(events[0].cost_nanousd);
  };

  it("with only `to`: the month `to` ends, vs the same span of the month before", async () => {
    // `to` at this month's start: last month, whole, vs the month before it.
    const v = await api(`/api/variance?workspace=${ws}&to=${iso(thisMonth)}`);
    expect(v.current).toEqual({ from: iso(lastMonth), to: iso(thisMonth) });
    expect(v.previous.from).toBe(iso(monthBefore));
    expect(BigInt(v.total.after.cost.nanousd)).toBe(
      (await cost(lastMonth + DAY)) + (await cost(lastMonth + 20 * DAY)),
    );
    expect(BigInt(v.total.before.cost.nanousd)).toBe(await cost(monthBefore + DAY));
    // `to` mid-month: that month so far vs the same number of days of the month before.
    const mid = await api(`/api/variance?workspace=${ws}&to=${iso(lastMonth + 10 * DAY)}`);
    expect(mid.current).toEqual({ from: iso(lastMonth), to: iso(lastMonth + 10 * DAY) });
    expect(mid.previous).toEqual({ from: iso(monthBefore), to: iso(monthBefore + 10 * DAY) });
    expect(BigInt(mid.total.after.cost.nanousd)).toBe(await cost(lastMonth + DAY));
  });
  it("a `vs_to` alone ends the compared window (same length as the current one), never ignored", async () => {
    const from = lastMonth + 15 * DAY;
    const to = lastMonth + 25 * DAY;
    const vsTo = lastMonth + 5 * DAY;
    const v = await api(`/api/variance?workspace=${ws}&from=${iso(from)}&to=${iso(to)}&vs_to=${iso(vsTo)}`);
    expect(v.previous).toEqual({ from: iso(vsTo - 10 * DAY), to: iso(vsTo) });
    expect(BigInt(v.total.before.cost.nanousd)).toBe(await cost(lastMonth + DAY));
  });
});

describe("forecast", () => {
  // At the `now` the calls were made around (what /api/forecast answers at its own clock, for these calls:
  // real data, no deployment): run across a UTC midnight, the API's today would be the calls' tomorrow.
  const forecastOf = async (ws: string): Promise<Json> => forecastMonth(rt.store, { workspaceId: ws }, now);
  it("the workspace run rate and its customers' count the same money: a tool record's reported cost is in both, as in spend", async () => {
    const ws = "forecast-tool";
    const call = validRecord({ ts_start: today - DAY + 3_600_000, customer_id: "c1" });
    await post(ws, [
      call,
      validRecord({
        ts_start: today - DAY + 3_600_000,
        kind: "tool",
        customer_id: "c1",
        cost_nanousd: "1000000000",
        provider: undefined,
        model: undefined,
        api: undefined,
        input_uncached_tokens: undefined,
        output_tokens: undefined,
      }),
    ]);
    const { events } = await api(`/api/events?workspace=${ws}&event_id=${call.event_id}`);
    const cost = BigInt(events[0].cost_nanousd) + 1_000_000_000n;
    const f = await forecastOf(ws);
    expect(f.customer_id).toMatchObject([{ key: "c1", run_rate_per_day: { nanousd: String(cost) } }]);
    expect(f.workspace.run_rate_per_day.nanousd).toBe(String(cost));
    expect(f.workspace.window_days).toBe(1);
  });

  it("a workspace with older calls counts the quiet days at the start of its 7 as zero, not as days it did not exist", async () => {
    // Weekday traffic seen on a Saturday: the trailing week opens on a quiet Saturday and Sunday. Only a
    // workspace with no calls before the week (a new one) has a shorter run-rate window.
    const ws = "forecast-quiet-start";
    const cost = 7_000_000_000n;
    await post(ws, [
      validRecord({ ts_start: today - 12 * DAY, customer_id: "c1", cost_nanousd: "1" }),
      validRecord({ ts_start: today - DAY + 3_600_000, customer_id: "c1", cost_nanousd: String(cost) }),
    ]);
    const f = await forecastOf(ws);
    expect(f.workspace.window_days).toBe(7);
    expect(f.workspace.run_rate_per_day.nanousd).toBe(String(cost / 7n));
    expect(f.customer_id).toMatchObject([{ key: "c1", run_rate_per_day: { nanousd: String(cost / 7n) } }]);
  });

  it("per customer and per feature, the run rates and spend add up to the workspace's; the projections too, but for today's spend past a rate", async () => {
    const ws = "forecast-adds-up";
    const at = (ts: number, customer_id: string, feature: string, nanousd: bigint) =>
      validRecord({ ts_start: ts, customer_id, feature, cost_nanousd: String(nanousd) });
    const calls = [
      at(today - 10 * DAY, "a", "x", 1n), // a call the week before: all 7 days count
      // 4 nano-USD a customer over the 7 days: each one's mean (4/7) rounds up, their sum's (12/7) does not.
      at(today - DAY + 60_000, "a", "x", 4n),
      at(today - 2 * DAY + 60_000, "b", "y", 4n),
      at(today - 3 * DAY + 60_000, "c", "x", 4n),
      at(now - 1_000, "b", "y", 9n), // today, past b's rate
    ];
    await post(ws, calls);
    const f = await forecastOf(ws);
    const nano = (m: { nanousd: string }) => BigInt(m.nanousd);
    const month = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1);
    const spent = (rs: Record<string, unknown>[], from: number, to = Number.POSITIVE_INFINITY) =>
      rs
        .filter((r) => (r.ts_start as number) >= from && (r.ts_start as number) < to)
        .reduce((a, r) => a + BigInt(r.cost_nanousd as string), 0n);
    const max = (a: bigint, b: bigint) => (a > b ? a : b);
    const left = BigInt(f.workspace.days_left);
    // The rule, for the workspace and for each row: complete days, then today at no less than its spend so
    // far, then the rest at the rate.
    const projected = (rs: Record<string, unknown>[], rate: bigint) =>
      spent(rs, month, today) + max(spent(rs, today), rate) + rate * (left - 1n);
    const rate = roundHalfUp(spent(calls, today - 7 * DAY, today), 7n);
    expect(nano(f.workspace.run_rate_per_day)).toBe(rate);
    expect(nano(f.workspace.projected)).toBe(projected(calls, rate));
    for (const by of ["customer_id", "feature"] as const) {
      const rows: Json[] = f[by];
      const total = (pick: (r: Json) => bigint) => rows.reduce((a, r) => a + pick(r), 0n);
      expect(
        total((r) => nano(r.run_rate_per_day)),
        by,
      ).toBe(rate);
      expect(
        total((r) => nano(r.to_date)),
        by,
      ).toBe(spent(calls, month));
      let pastRates = 0n;
      for (const row of rows) {
        const own = calls.filter((c) => c[by] === row.key);
        const r = nano(row.run_rate_per_day);
        // Within 1 nano-USD of its own mean.
        const week = spent(own, today - 7 * DAY, today);
        expect(r * 7n - week < 7n && week - r * 7n < 7n, `${by}=${row.key}`).toBe(true);
        expect(nano(row.projected), `${by}=${row.key}`).toBe(projected(own, r));
        pastRates += max(spent(own, today) - r, 0n);
      }
      // The rows' sum is the workspace's, but for how far each row's today passed its rate (the workspace's
      // today floored once).
      expect(
        total((r) => nano(r.projected)),
        by,
      ).toBe(nano(f.workspace.projected) + pastRates - max(spent(calls, today) - rate, 0n));
    }
  });

  it("never projects the month below what it has spent: a new workspace's first day counts", async () => {
    const ws = "forecast-first-day";
    await post(ws, [validRecord({ ts_start: now - 1_000, customer_id: "c1", cost_nanousd: "5000000000" })]);
    const f = await forecastOf(ws);
    expect(f.workspace.to_date.nanousd).toBe("5000000000");
    expect(f.workspace).toMatchObject({
      projected: { nanousd: "5000000000" },
      low: { nanousd: "5000000000" },
      high: { nanousd: "5000000000" },
    });
    expect(f.customer_id).toMatchObject([
      { key: "c1", to_date: { nanousd: "5000000000" }, projected: { nanousd: "5000000000" } },
    ]);
  });
});

describe("budget burn-down", () => {
  // Reported costs, so every expected figure is the records' own.
  const spent = (ts: number, customer_id: string, nanousd: bigint, feature = "f") =>
    validRecord({ ts_start: ts, customer_id, feature, cost_nanousd: String(nanousd) });
  const budget = async (ws: string, id: string, scope: Record<string, string>) => {
    const res = await rt.app.request(`/api/budgets?workspace=${ws}`, {
      method: "POST",
      headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
      body: JSON.stringify({ id, scope, window: "lifetime", limit_usd: "100.00" }),
    });
    expect(res.status, await res.text()).toBe(201);
  };
  const ws = "burn-down-new";
  const calls = {
    // Calls began 2 days ago: its rate is over those 2 days, not 7.
    fresh: [
      spent(today - 2 * DAY + 3_600_000, "fresh", 3_000_000_000n),
      spent(today - DAY + 60_000, "fresh", 1_000_000_001n),
    ],
    // Calls 10 days ago too: quiet days opening the 7 count.
    steady: [spent(today - 10 * DAY, "steady", 5n), spent(today - DAY + 60_000, "steady", 7_000_000_000n)],
    // Calls today alone: no complete day to take a rate from.
    today: [spent(now - 1_000, "today", 2_000_000_000n)],
  };
  beforeAll(async () => {
    await post(ws, Object.values(calls).flat());
    await budget(ws, "per-customer", { customer_id: "*" });
    await budget(ws, "per-customer-feature", { customer_id: "*", feature: "*" });
  });
  const costOf = (rs: Record<string, unknown>[], from: number) =>
    rs
      .filter((r) => (r.ts_start as number) >= from)
      .reduce((a, r) => a + BigInt(r.cost_nanousd as string), 0n);

  for (const id of ["per-customer", "per-customer-feature"])
    it(`a bucket's run rate is over the days since its first call when it had none the week before (${id})`, async () => {
      // At the `now` the calls were made around: the API's own clock could pass a UTC midnight after them.
      const budgets = await budgetBurnDown(rt.guard, rt.store, ws, now);
      const row = (customer: string) =>
        budgets.find((b) => b.budget_id === id && b.bucket.customer_id === customer);
      // The days since each one's first call, or all 7 with a call in the week before them.
      const rateDays = { fresh: 2, steady: 7, today: 0 };
      for (const customer of Object.keys(calls) as (keyof typeof calls)[]) {
        const b = row(customer);
        if (!b) throw new Error(`no ${customer} bucket: ${JSON.stringify(budgets)}`);
        const days = rateDays[customer];
        expect(b.run_rate_days, customer).toBe(days);
        const week = costOf(calls[customer], today - 7 * DAY) - costOf(calls[customer], today);
        if (days === 0) {
          // Its spend today says nothing of a day's: no rate, and why, rather than $0 a day.
          expect(b.run_rate_per_day, customer).toBeNull();
          expect(b.days_until_exhausted, customer).toBeNull();
          expect(b.note, customer).toMatch(/^no run rate before a complete day of calls/);
          continue;
        }
        const rate = roundHalfUp(week, BigInt(days));
        expect(BigInt(b.run_rate_per_day!.nanousd), customer).toBe(rate);
        expect(b.note, customer).toBeUndefined();
        const left = BigInt(b.remaining.nanousd);
        expect(b.days_until_exhausted, customer).toBe(Number((left * 10n) / rate) / 10);
      }
    });
});

describe("data_mode", () => {
  const ws = "modes";
  beforeAll(() =>
    post(ws, [
      validRecord({ data_mode: "real", feature: "f" }),
      validRecord({ data_mode: "demo", feature: "f" }),
    ]),
  );

  it("a value that is no data mode is a 400 naming it, not an empty answer", async () => {
    for (const path of [
      `/api/rollups/features?workspace=${ws}&data_mode=Real`,
      `/api/variance?workspace=${ws}&data_mode=prod`,
      `/api/spend?workspace=${ws}&by=feature&data_mode=demos`,
      `/api/export/calls?workspace=${ws}&data_mode=`,
    ]) {
      const res = await getJson(rt.app, rt.rootToken, path);
      expect(res.status, path).toBe(400);
      expect(res.json.error).toMatchObject({ code: "invalid_parameter", param: "data_mode" });
    }
  });

  it("data_mode=all is every mode on every route, as on the rollups", async () => {
    const { features } = await api(`/api/rollups/features?workspace=${ws}&data_mode=all`);
    expect(features[0].requests).toBe(2);
    const { rows } = await api(`/api/spend?workspace=${ws}&by=feature&data_mode=all`);
    expect(rows.map((r: Json) => r.calls)).toEqual([2]);
    const { events } = await api(`/api/events?workspace=${ws}&data_mode=all`);
    expect(events).toHaveLength(2);
    const { rows: demo } = await api(`/api/spend?workspace=${ws}&by=feature&data_mode=demo`);
    expect(demo.map((r: Json) => r.calls)).toEqual([1]);
  });
});

describe("forecast parameters", () => {
  it("a window (from, to) is a 400 naming it: the forecast is of the UTC month, never of another window", async () => {
    for (const [q, param] of [
      ["from=7d", "from"],
      ["to=2026-01-01", "to"],
    ] as const) {
      const res = await getJson(rt.app, rt.rootToken, `/api/forecast?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.json.error).toMatchObject({ code: "invalid_parameter", param });
    }
  });
});

describe("unknown parameters", () => {
  it("a misspelt filter is a 400 naming it, not an answer for everything", async () => {
    for (const [path, param] of [
      ["/api/rollups/customers?customer=acme", "customer"],
      ["/api/rollups/features?featur=search", "featur"],
      ["/api/rollups/user-day?by=model", "by"],
      ["/api/variance?vs=7d", "vs"],
      ["/api/forecast?customer=acme", "customer"],
      ["/api/export/calls?page=2", "page"],
      ["/api/spend?by=feature&user=u1", "user"],
      ["/api/events?customer=acme", "customer"],
    ] as const) {
      const res = await getJson(rt.app, rt.rootToken, path);
      expect(res.status, path).toBe(400);
      expect(res.json.error, path).toMatchObject({ code: "invalid_parameter", param });
    }
  });

  it("every parameter a route takes is still taken", async () => {
    const filters = "workspace=default&customer_id=c&feature=f&user_id=u&data_mode=all&deployment=all";
    for (const path of [
      `/api/rollups/user-day?${filters}&from=7d&to=now&top=3`,
      `/api/rollups/outcomes?${filters}&by=model`,
      `/api/variance?${filters}&from=7d&to=now&vs_from=14d&vs_to=7d`,
      `/api/forecast?${filters}`,
      `/api/export/calls?${filters}&from=7d&to=now&limit=5`,
      `/api/spend?by=day&${filters}&from=7d&to=now`,
      `/api/events?${filters}&from=7d&to=now&limit=5&event_id=01900000-0000-7000-8000-000000000001&request_id=r`,
    ])
      await api(path);
  });
});
