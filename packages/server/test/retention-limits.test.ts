// Retention and limits: a restart rebuilds in-memory budgets and agent runs from raw calls, so a purge
// keeps the raw calls a budget's current window (or a run's week) still counts; a cap then holds after it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { retentionJob } from "../src/jobs/retention.js";
import { rawFloor } from "../src/limits/raw-floor.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import { type Json, postEvents, validRecord } from "./helpers.js";

const HOUR = 3_600_000;
const dir = mkdtempSync(join(tmpdir(), "tg-retention-limits-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open = () => openRuntime({ dataDir: dir, pricebookPath: null });
const admin = async (rt: Runtime, method: string, path: string, body?: unknown) => {
  const res = await rt.app.request(path, {
    method,
    headers: { authorization: `Bearer ${rt.rootToken}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Json };
};

describe("a purge keeps the raw calls limits are rebuilt from", () => {
  it("a 72-hour budget's calls survive `purge --raw-days 1` and a restart: its spend is whole again", async () => {
    let rt = await open();
    try {
      expect(
        (
          await admin(rt, "POST", "/api/budgets", {
            id: "three-days",
            scope: { user_id: "u-keep" },
            window: "72h",
            limit_usd: "1.00",
          })
        ).status,
      ).toBe(201);
      const calls = [60, 50, 2].map((h) =>
        validRecord({ ts_start: Date.now() - h * HOUR, user_id: "u-keep", output_tokens: 1_000_000 }),
      );
      expect((await postEvents(rt.app, rt.rootToken, calls)).json.accepted).toBe(3);
      const spent = (await admin(rt, "GET", "/api/budgets/three-days")).json.spend_usd;
      expect(spent).toBe("1.800045"); // 3 calls of gpt-4o-mini: 1M output tokens at $0.60/M, 100 input at $0.15/M

      const res = await admin(rt, "POST", "/api/admin/purge", { raw_days: 1 });
      expect(res.status).toBe(200);
      expect(res.json.raw_deleted).toBe(0);
      // Kept from the UTC midnight at or before the window's first hour (71 whole hours and this one).
      const windowStart = (Math.floor(Date.now() / HOUR) - 71) * HOUR;
      expect(res.json.raw_before).toBe(new Date(windowStart - (windowStart % (24 * HOUR))).toISOString());
      expect(res.json.raw_kept_for_limits).toContain("budget three-days of workspace default (window 72h)");
    } finally {
      await rt.close();
    }
    rt = await open();
    try {
      expect((await admin(rt, "GET", "/api/budgets/three-days")).json.spend_usd).toBe("1.800045");
      // Without limits that need them, the purge goes as far as asked.
      expect((await admin(rt, "DELETE", "/api/budgets/three-days")).status).toBe(200);
      const res = await admin(rt, "POST", "/api/admin/purge", { raw_days: 1 });
      expect(res.json).toMatchObject({ raw_deleted: 2, raw_kept_for_limits: null });
    } finally {
      await rt.close();
    }
  });

  it("a lifetime budget keeps every raw call; agent-run ceilings keep a week; the job says so once", async () => {
    const rt = await open();
    try {
      await admin(rt, "PUT", "/api/agents/weekly-bot", { max_llm_calls: 100 });
      const now = Date.now();
      expect(rawFloor(rt.guard.registry, now)).toEqual({
        from: now - 7 * 24 * HOUR,
        why: "the agent-run ceilings of workspace default",
      });
      await admin(rt, "POST", "/api/budgets", {
        id: "trial",
        scope: { customer_id: "*" },
        window: "lifetime",
        limit_usd: "5.00",
      });
      expect(rawFloor(rt.guard.registry, now)).toEqual({
        from: 0,
        why: "budget trial of workspace default (window lifetime)",
      });
      const res = await admin(rt, "POST", "/api/admin/purge", { raw_days: 1 });
      expect(res.json).toMatchObject({ raw_deleted: 0, raw_before: null });
      expect(res.json.raw_kept_for_limits).toMatch(/^every raw call is kept: budget trial/);

      const logs: string[] = [];
      const job = retentionJob(
        rt.store,
        { rawDays: 1, summaryMonths: null },
        (m) => logs.push(m),
        (t) => rawFloor(rt.guard.registry, t),
      )!;
      await job.run(new AbortController().signal);
      await job.run(new AbortController().signal);
      expect(logs).toEqual([
        "retention: every raw call is kept: budget trial of workspace default (window lifetime) counts them (limits are rebuilt from raw calls at a restart)",
      ]);
    } finally {
      await rt.close();
    }
  });
});
