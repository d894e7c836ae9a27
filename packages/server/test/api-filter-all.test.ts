// `deployment=all` and `data_mode=all` mean every value on every route that filters by them, as the rollups
// have always read them: `tollgate spend --deployment all` once asked for a deployment named "all" and
// showed nothing. And `deployment=prod` counts calls without a deployment on every one of them, as the
// rollups always have: `tollgate spend --deployment prod` once left them out and disagreed with
// `tollgate rollup features --deployment prod`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getOk, type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const ts = Date.now() - 3_600_000;

/** One call per (deployment, data_mode) pair, each of a different cost; one of them unpriced. */
const RECORDS = [
  validRecord({ ts_start: ts, deployment: "prod", data_mode: "real", cost_nanousd: "1" }),
  validRecord({ ts_start: ts, deployment: "staging", data_mode: "test", cost_nanousd: "20" }),
  validRecord({ ts_start: ts, deployment: undefined, data_mode: "demo", cost_nanousd: "300" }),
  validRecord({ ts_start: ts, deployment: "prod", data_mode: "real", model: "no-such-model-9" }),
];

beforeAll(async () => {
  rt = await openTestRuntime();
  const res = await postEvents(rt.app, rt.rootToken, RECORDS);
  expect(res.json.rejected).toBe(0);
});
afterAll(() => rt?.close());

const api = (path: string): Promise<Json> => getOk(rt.app, rt.rootToken, path);
const window = `from=${new Date(ts - 60_000).toISOString()}&to=now`;

describe("`all` is every value of deployment and data_mode, on every filtered route", () => {
  it.each(["deployment=all", "data_mode=all", "deployment=all&data_mode=all"])(
    "raw routes: %s answers what no filter answers",
    async (all) => {
      const spend = await api(`/api/spend?by=deployment&${window}&${all}`);
      expect(spend.rows).toEqual((await api(`/api/spend?by=deployment&${window}`)).rows);
      expect(spend.rows.map((r: Json) => [r.key, r.cost_nanousd])).toEqual([
        [null, "300"],
        ["staging", "20"],
        ["prod", "1"],
      ]);
      expect((await api(`/api/events?${window}&${all}`)).events).toHaveLength(RECORDS.length);
      expect((await api(`/api/export/calls?${window}&${all}`)).total).toBe(RECORDS.length);
      expect((await api(`/api/prices/unpriced?${window}&${all}`)).models).toEqual([
        expect.objectContaining({ model: "no-such-model-9", calls: 1 }),
      ]);
    },
  );

  it("the rollups: real traffic in prod (or no deployment) by default, every call with both set to all", async () => {
    const cost = async (query: string) =>
      (await api(`/api/rollups/features?${window}${query}`)).features.reduce(
        (a: bigint, f: Json) => a + BigInt(f.cost.nanousd),
        0n,
      );
    expect(await cost("")).toBe(1n);
    expect(await cost("&deployment=all")).toBe(1n);
    expect(await cost("&data_mode=all")).toBe(301n);
    expect(await cost("&deployment=all&data_mode=all")).toBe(321n);
  });

  it("an explicit deployment=prod is the default spelt out: calls without a deployment count as prod", async () => {
    // What each analytics route answers, less the window (its `to` is now, read anew by each request).
    const ROUTES = {
      "/api/rollups/user-day": "days",
      "/api/rollups/features": "features",
      "/api/rollups/agent-runs": "agent_types",
      "/api/rollups/customers": "customers",
      "/api/rollups/outcomes": "rows",
      "/api/variance": "drivers",
    };
    for (const [route, rows] of Object.entries(ROUTES)) {
      const answer = async (query: string) => (await api(`${route}?${window}&data_mode=all${query}`))[rows];
      expect(await answer("&deployment=prod"), route).toEqual(await answer(""));
    }
    const cost = async (query: string) =>
      (await api(`/api/rollups/features?${window}&data_mode=all${query}`)).features.reduce(
        (a: bigint, f: Json) => a + BigInt(f.cost.nanousd),
        0n,
      );
    expect(await cost("&deployment=prod")).toBe(301n);
    const forecast = async (query: string) =>
      (await api(`/api/forecast?data_mode=all${query}`)).workspace.to_date;
    expect(await forecast("&deployment=prod")).toEqual(await forecast(""));
  });

  it("deployment=prod on the raw routes counts calls without a deployment, as the rollups do; other values are exact", async () => {
    const prod = "deployment=prod&data_mode=all";
    const spend = await api(`/api/spend?by=deployment&${window}&${prod}`);
    expect(spend.rows.map((r: Json) => [r.key, r.cost_nanousd])).toEqual([
      [null, "300"],
      ["prod", "1"],
    ]);
    const features = await api(`/api/rollups/features?${window}&${prod}`);
    expect(spend.rows.reduce((a: bigint, r: Json) => a + BigInt(r.cost_nanousd), 0n)).toBe(
      features.features.reduce((a: bigint, f: Json) => a + BigInt(f.cost.nanousd), 0n),
    );
    const deployments = (events: Json[]) => events.map((e) => e.deployment).sort();
    expect(deployments((await api(`/api/events?${window}&${prod}`)).events)).toEqual([null, "prod", "prod"]);
    expect((await api(`/api/export/calls?${window}&${prod}`)).total).toBe(3);
    expect((await api(`/api/prices/unpriced?${window}&${prod}`)).models).toEqual([
      expect.objectContaining({ model: "no-such-model-9", calls: 1 }),
    ]);
    // Any other deployment is that one alone.
    expect(deployments((await api(`/api/events?${window}&deployment=staging`)).events)).toEqual(["staging"]);
    expect((await api(`/api/export/calls?${window}&deployment=staging`)).total).toBe(1);
    expect((await api(`/api/prices/unpriced?${window}&deployment=staging`)).models).toEqual([]);
  });
});
