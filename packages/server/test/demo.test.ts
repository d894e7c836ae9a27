// The demo data tells the story the README's quickstart walks through: `explain --data-mode demo --from 30d`
// over a 90-day demo finds the summarize-v2 deploy behind the rise in spend, whatever the time of day.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateDemo } from "../src/demo/generate.js";
import { getJson, type Json, openTestRuntime, postEvents } from "./helpers.js";

const DAY = 86_400_000;
// Late in a UTC day, as most of a day is: a window of the last 30 days starts late on its first day.
const now = Math.floor(Date.now() / DAY) * DAY - DAY + 23 * 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
let rt: Awaited<ReturnType<typeof openTestRuntime>>;
let records: Record<string, unknown>[];

beforeAll(async () => {
  rt = await openTestRuntime();
  records = [...generateDemo({ days: 90, callsPerDay: 60, seed: 42, now })];
  for (let i = 0; i < records.length; i += 5000) {
    const res = await postEvents(rt.app, rt.rootToken, records.slice(i, i + 5000));
    expect(res.json.rejected).toBe(0);
  }
}, 120_000);
afterAll(() => rt?.close());

describe("demo data", () => {
  it("summarize-v2 runs over the last third of the days", () => {
    const days = new Set(
      records
        .filter((r) => r.prompt_version === "summarize-v2")
        .map((r) => Math.floor((r.ts_start as number) / DAY)),
    );
    expect(days.size).toBe(30);
    expect(Math.max(...days)).toBe(Math.floor(now / DAY));
  });

  it("explain over the last 30 days names the summarize-v2 deploy", async () => {
    const res = await getJson(
      rt.app,
      rt.rootToken,
      `/api/variance?data_mode=demo&from=${iso(now - 30 * DAY)}&to=${iso(now)}`,
    );
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    const deploy = res.json.prompt_deploys.find((d: Json) => d.prompt_version === "summarize-v2");
    expect(deploy, JSON.stringify(res.json.prompt_deploys)).toBeDefined();
    expect(res.json.narrative.join("\n")).toMatch(
      /prompt_version summarize-v2 \(feature summarize\) first seen/,
    );
  });
});
