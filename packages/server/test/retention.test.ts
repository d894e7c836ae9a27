// Retention: after raw calls older than 30 days are purged, a 90-day spend trend still returns the same
// totals, day by day, from the daily summaries (kept up to date on every append), and says `truncated`
// only where the summaries are gone too or the question needs raw fields.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateDemo } from "../src/demo/generate.js";
import { retentionFromEnv, scheduleRetention } from "../src/jobs/retention.js";
import { createKey, getJson, type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const now = Date.now();

beforeAll(async () => {
  rt = await openTestRuntime();
  const records = [...generateDemo({ days: 90, callsPerDay: 60, seed: 5, now })];
  for (let i = 0; i < records.length; i += 5000) {
    const res = await postEvents(rt.app, rt.rootToken, records.slice(i, i + 5000));
    expect(res.json.rejected).toBe(0);
  }
}, 120_000);
afterAll(() => rt?.close());

const spend = async (query: string): Promise<Json> => {
  const res = await getJson(rt.app, rt.rootToken, `/api/spend?${query}`);
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  return res.json;
};
const purge = async (body: unknown) => {
  const res = await rt.app.request("/api/admin/purge", {
    method: "POST",
    headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Json };
};
const total = (rows: Json[]) => rows.reduce((a: bigint, r: Json) => a + BigInt(r.cost_nanousd), 0n);
const strip = (rows: Json[]) => rows.map(({ cost_usd: _, ...r }: Json) => r);

describe("retention", () => {
  it("purging raw calls keeps the 90-day trend exact from the daily summaries", async () => {
    const before = await spend("by=day&from=90d");
    const byFeature = await spend("by=feature&from=90d&customer_id=cust-001");
    expect(before.coverage).toEqual({
      raw_available_from: null,
      summary_available_from: null,
      truncated: false,
    });
    const rawCount = await rt.store.count({ workspaceId: "default" });

    const res = await purge({ raw_days: 30 });
    expect(res.status).toBe(200);
    expect(res.json.raw_deleted).toBeGreaterThan(0);
    expect(await rt.store.count({ workspaceId: "default" })).toBe(rawCount - res.json.raw_deleted);

    const after = await spend("by=day&from=90d");
    expect(strip(after.rows)).toEqual(strip(before.rows));
    expect(total(after.rows)).toBe(total(before.rows));
    expect(after.coverage).toMatchObject({ raw_available_from: res.json.raw_before, truncated: false });
    const featureAfter = await spend("by=feature&from=90d&customer_id=cust-001");
    expect(strip(featureAfter.rows)).toEqual(strip(byFeature.rows));

    // a question the summaries cannot answer (session_id is not a summary key) says so
    const bySession = await spend("by=feature&from=90d&session_id=s-1");
    expect(bySession.coverage.truncated).toBe(true);
    // a window inside the raw horizon is not truncated at all
    expect((await spend("by=day&from=7d")).coverage.truncated).toBe(false);
    // rollups read raw calls only: a 90-day one says part of its window is gone, a 7-day one does not
    const rollup = async (q: string) =>
      (await getJson(rt.app, rt.rootToken, `/api/rollups/features?${q}`)).json;
    expect((await rollup("from=90d&data_mode=all&deployment=all")).coverage.truncated).toBe(true);
    expect((await rollup("from=7d")).coverage).toMatchObject({
      truncated: false,
      raw_available_from: res.json.raw_before,
    });
  });

  it("after a purge: a late retry of a purged call is not counted again; a new late call counts once", async () => {
    const day = await spend("by=day&from=90d");
    const old = [...generateDemo({ days: 90, callsPerDay: 60, seed: 5, now })][0]!;
    const res = await postEvents(rt.app, rt.rootToken, [old]);
    expect(res.json.duplicates).toBe(1);
    expect(strip((await spend("by=day&from=90d")).rows)).toEqual(strip(day.rows));
    // a new call from 60 days ago (past the raw horizon) counts at once, and once more after the next purge
    const late = validRecord({ ts_start: now - 60 * 86_400_000, feature: "late" });
    expect((await postEvents(rt.app, rt.rootToken, [late])).json.accepted).toBe(1);
    const withLate = await spend("by=feature&from=90d&feature=late");
    expect(withLate.rows).toHaveLength(1);
    expect((await purge({ raw_days: 30 })).json.raw_deleted).toBe(1);
    expect(strip((await spend("by=feature&from=90d&feature=late")).rows)).toEqual(strip(withLate.rows));
  });

  it("purging summaries too: the trend is truncated where neither is left", async () => {
    const res = await purge({ summary_months: 1 });
    expect(res.status).toBe(200);
    const trend = await spend("by=day&from=90d");
    expect(trend.coverage).toMatchObject({
      truncated: true,
      summary_available_from: res.json.summary_before,
    });
    expect(trend.rows.every((r: Json) => `${r.key}T00:00:00.000Z` >= res.json.summary_before)).toBe(true);
    expect((await spend(`by=day&from=${res.json.summary_before}`)).coverage.truncated).toBe(false);
  });

  it("bad purge bodies are typed 400s; only the local admin may purge (it acts on every workspace)", async () => {
    const before = await rt.store.count({ workspaceId: "default" });
    // An admin key of another workspace too: a purge deletes every workspace's old calls.
    for (const [workspace, role] of [
      ["default", "read"],
      ["default", "ingest"],
      ["default", "admin"],
      ["elsewhere", "admin"],
    ] as const) {
      const { json: k } = await createKey(rt.app, rt.rootToken, workspace, role);
      const res = await rt.app.request("/api/admin/purge", {
        method: "POST",
        headers: { authorization: `Bearer ${k.key}`, "content-type": "application/json" },
        body: JSON.stringify({ raw_days: 1 }),
      });
      expect(res.status, `${workspace} ${role}`).toBe(403);
      if (role === "admin")
        expect(((await res.json()) as Json).error.message).toContain("only the server's local admin may");
    }
    expect(await rt.store.count({ workspaceId: "default" })).toBe(before);
    expect((await purge({})).status).toBe(400);
    expect((await purge({ raw_days: 0 })).json.error.param).toBe("raw_days");
    expect((await purge({ raw_days: 3, extra: 1 })).status).toBe(400);
  });

  it("serve's retention job: settings from the environment, a purge at start and hourly", async () => {
    expect(retentionFromEnv({ TOLLGATE_RAW_RETENTION_DAYS: "30" })).toEqual({
      rawDays: 30,
      summaryMonths: null,
    });
    expect(() => retentionFromEnv({ TOLLGATE_SUMMARY_RETENTION_MONTHS: "0" })).toThrow(/at least 1/);
    const late = validRecord({ ts_start: now - 45 * 86_400_000, feature: "job" });
    expect((await postEvents(rt.app, rt.rootToken, [late])).json.accepted).toBe(1);
    const logs: string[] = [];
    const stop = scheduleRetention(rt.store, { rawDays: 30, summaryMonths: null }, (m) => logs.push(m));
    await expect.poll(() => logs.length).toBe(1);
    stop();
    expect(logs[0]).toMatch(/^retention: 1 raw calls rolled into daily summaries/);
    expect(await rt.store.count({ workspaceId: "default", where: { feature: "job" } })).toBe(0);
  });

  it("the forecast, read from raw calls, says when its month or trailing days reach past the raw horizon", async () => {
    const forecast = async () => (await getJson(rt.app, rt.rootToken, "/api/forecast")).json;
    expect((await forecast()).coverage).toMatchObject({ truncated: false });
    // One day of raw calls kept: the 7 trailing days the run rate is taken from are partly gone.
    const res = await purge({ raw_days: 1 });
    expect((await forecast()).coverage).toEqual({
      raw_available_from: res.json.raw_before,
      summary_available_from: expect.any(String),
      truncated: true,
    });
  });
});
