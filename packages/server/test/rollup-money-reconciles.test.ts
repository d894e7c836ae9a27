// Money reconciles: a tool or agent record that carries a cost (sent with a reported cost_nanousd) is
// spend in the rollups, the variance and the forecast as it is in `spend`, budgets and exports, so every
// total of a window is the same amount. Their requests stay model calls. The rollups once summed model
// calls only, and `tollgate rollup … --deployment all --data-mode all` came out short of `tollgate spend`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utcMidnight, utcMonthStart } from "../src/time.js";
import { getOk, type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const now = Date.now();
const today = Math.max(utcMidnight(now), now - 3_600_000);
// A closed day: its calls arrive late and are summed into the closed-day tables as they are stored.
const closedDay = utcMidnight(now) - 2 * 86_400_000 + 43_200_000;

const attribution = { feature: "search", customer_id: "c1", user_id: "u1" };
const costed = (kind: string, ts: number, cost: string, more: Record<string, unknown> = {}) =>
  validRecord({
    kind,
    ts_start: ts,
    provider: undefined,
    model: undefined,
    api: undefined,
    input_uncached_tokens: undefined,
    output_tokens: undefined,
    cost_nanousd: cost,
    ...attribution,
    ...more,
  });

const RECORDS = [
  validRecord({ ts_start: today, cost_nanousd: "1000", ...attribution }),
  costed("tool", today, "20000"),
  costed("agent", today, "300000", { agent_run_id: "run-1", agent_type: "helper" }),
  validRecord({ ts_start: closedDay, cost_nanousd: "4000", ...attribution }),
  costed("tool", closedDay, "50000"),
  // A traced tool span costs nothing: no row of its own anywhere.
  costed("tool", today, "0", { feature: "docs-only", customer_id: "c2", user_id: "u2" }),
];
const TOTAL = 375_000n;

beforeAll(async () => {
  rt = await openTestRuntime();
  const res = await postEvents(rt.app, rt.rootToken, RECORDS);
  expect(res.json.rejected).toBe(0);
});
afterAll(() => rt?.close());

const api = (path: string): Promise<Json> => getOk(rt.app, rt.rootToken, path);
const sum = (rows: Json[], cost: (r: Json) => string) => rows.reduce((a, r) => a + BigInt(cost(r)), 0n);
const all = "deployment=all&data_mode=all";
const window = `from=${new Date(utcMidnight(closedDay)).toISOString()}&to=${new Date(now + 60_000).toISOString()}&${all}`;

describe("a window's money is one amount on every route", () => {
  it("spend, every rollup and the variance sum every record's cost; requests count model calls", async () => {
    const spend = await api(`/api/spend?by=feature&${window}`);
    expect(sum(spend.rows, (r) => r.cost_nanousd)).toBe(TOTAL);
    const features = (await api(`/api/rollups/features?${window}`)).features;
    expect(sum(features, (f) => f.cost.nanousd)).toBe(TOTAL);
    expect(features.map((f: Json) => [f.feature, f.requests])).toEqual([["search", 2]]);
    const customers = (await api(`/api/rollups/customers?${window}`)).customers;
    expect(customers.map((c: Json) => [c.customer_id, c.cost.nanousd, c.requests, c.users])).toEqual([
      ["c1", String(TOTAL), 2, 1],
    ]);
    const days = (await api(`/api/rollups/user-day?${window}`)).days;
    expect(sum(days, (d) => d.cost.nanousd)).toBe(TOTAL);
    expect(days.map((d: Json) => [d.requests, d.users])).toEqual([
      [1, 1],
      [1, 1],
    ]);
    for (const by of ["feature", "model", "prompt_version"]) {
      const rows = (await api(`/api/rollups/outcomes?by=${by}&${window}`)).rows;
      expect(
        sum(rows, (r) => r.cost.nanousd),
        by,
      ).toBe(TOTAL);
      expect(
        sum(rows, (r) => String(r.requests)),
        by,
      ).toBe(2n);
    }
    const variance = await api(`/api/variance?${window}`);
    expect(variance.total.after.cost.nanousd).toBe(String(TOTAL));
    expect(variance.total.after.requests).toBe(2);
  });

  it('the narrative names a tool\'s model "" (none), as the tables do, not a blank', async () => {
    const { narrative } = await api(`/api/variance?${window}`);
    const byModel = narrative.find((l: string) => l.startsWith("By model: "));
    // The tools' and agent's $0.000370 is the biggest change; the model calls' $0.000005 comes after it.
    expect(byModel).toMatch(/^By model: \(none\) \+\$0\.000370 \(.*\); gpt-4o-mini \+\$0\.000005 /);
  });

  it("a row of spend without requests has no success rate (none failed): null, not 0", async () => {
    const { rows } = await api(`/api/rollups/outcomes?by=model&${window}`);
    expect(rows.map((r: Json) => [r.model, r.requests, r.success_rate])).toEqual([
      ["", 0, null],
      ["gpt-4o-mini", 2, 1],
    ]);
  });

  it("the forecast's month to date is the month's spend", async () => {
    const month = `from=${new Date(utcMonthStart(now)).toISOString()}&to=${new Date(now + 60_000).toISOString()}&${all}`;
    const spend = sum((await api(`/api/spend?by=day&${month}`)).rows, (r) => r.cost_nanousd);
    const forecast = await api(`/api/forecast?${all}`);
    expect(forecast.workspace.to_date.nanousd).toBe(String(spend));
    expect(sum(forecast.customer_id, (r) => r.to_date.nanousd)).toBe(spend);
  });
});
