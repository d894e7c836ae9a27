import type { Context, Hono } from "hono";
import type { Principal } from "../auth/keys.js";
import { badRequest } from "../errors.js";
import type { SpendGuard } from "../limits/guard.js";
import { budgetBurnDown } from "../query/burn-down.js";
import { coverageOf } from "../query/coverage.js";
import { DRIVER_DIMENSIONS, explainChange } from "../query/explain.js";
import { decodeCursor, EXPORT_COLUMNS, exportAnswer, exportPage } from "../query/export.js";
import { forecastFrom, forecastMonth } from "../query/forecast.js";
import {
  agentRunRollup,
  customerRollup,
  featureRollup,
  monthSoFar,
  monthWindows,
  OUTCOME_DIMENSIONS,
  outcomeRollup,
  previousWindow,
  userDayRollup,
} from "../query/rollups.js";
import { QUERY_TIMES } from "../query-time.js";
import type { AnalyticsStore, EventFilter, EventStore } from "../store/types.js";
import { DAY_MS } from "../time.js";
import { DEFAULT_DEPLOYMENT, EVERY_VALUE, filterFrom } from "./app.js";
import { FILTER_PARAMS, intParam, oneOfParam, onlyParams, timeParam } from "./query-params.js";

type Env = { Variables: { principal: Principal } };
type Middleware = (c: Context<Env>, next: () => Promise<void>) => Promise<void>;

export interface RollupRouteHelpers {
  read: Middleware;
  workspaceOf: (c: Context<Env>, requested?: string | null) => string;
}

/** Without `from`, a window is the 30 days before its `to` (now when absent). */
const DEFAULT_SPAN_MS = 30 * DAY_MS;

/**
 * The query with its default window: `from` is 30 days before `to` (rather than before now), so a `to`
 * alone further back than that is a window ending there, not a 400 about a `from` never given.
 */
function withDefaultWindow(q: Record<string, string>, now: number): Record<string, string> {
  if (q.from !== undefined) return { to: "now", ...q };
  const to = timeParam(q.to, "to", now) ?? now;
  const from = new Date(Math.max(QUERY_TIMES.min, to - DEFAULT_SPAN_MS)).toISOString();
  return { ...q, from, to: q.to ?? "now" };
}

/**
 * The analytics filter of a request: time range (default the 30 days before `to`, or before now),
 * exact-match attribution filters, and the two defaults reports start from: data_mode=real and deployment=prod (records without
 * a deployment count as prod). `data_mode=all` / `deployment=all` lift them.
 */
export function analyticsFilter(
  c: Context<Env>,
  workspaceOf: RollupRouteHelpers["workspaceOf"],
  now: number,
  extraParams: readonly string[] = [],
) {
  const q = c.req.query();
  onlyParams(c.req.queries(), [...FILTER_PARAMS, ...extraParams]);
  const filter = filterFrom(withDefaultWindow(q, now), workspaceOf(c, q.workspace), now);
  const where = { ...filter.where };
  // filterFrom checked the mode and left `all` (of either) out of the filter.
  if (q.data_mode !== EVERY_VALUE) where.data_mode ??= "real";
  // filterFrom was given both times, and checked that `to` is after `from`.
  const from = filter.from!;
  const to = filter.to!;
  // No deployment asked for is prod, and prod (asked for or not) counts records without a deployment.
  if (q.deployment === undefined) filter.deploymentOrUnset = DEFAULT_DEPLOYMENT;
  return { ...filter, from, to, where };
}

/** Answers carry the window they cover, in ms and ISO. */
const windowOf = (f: { from: number; to: number }) => ({
  from: new Date(f.from).toISOString(),
  to: new Date(f.to).toISOString(),
});

export function registerRollupRoutes(
  app: Hono<Env>,
  store: AnalyticsStore & Pick<EventStore, "spend" | "queryJson" | "count" | "retention">,
  guard: SpendGuard,
  h: RollupRouteHelpers,
): void {
  /**
   * The window an answer covers and what of it the raw events still hold: rollups read raw events only,
   * so any part older than the raw retention horizon is reported as truncated.
   */
  const answerWindow = async (f: { workspaceId: string; from: number; to: number }) => ({
    window: windowOf(f),
    coverage: coverageOf(await store.retention(f.workspaceId), f.from, false),
  });

  app.get("/api/rollups/user-day", h.read, async (c) => {
    const f = analyticsFilter(c, h.workspaceOf, Date.now(), ["top"]);
    const top = intParam(c.req.query("top"), "top", 1, 100) ?? 5;
    return c.json({ ...(await answerWindow(f)), days: await userDayRollup(store, f, top) });
  });

  app.get("/api/rollups/features", h.read, async (c) => {
    const f = analyticsFilter(c, h.workspaceOf, Date.now());
    return c.json({
      ...(await answerWindow(previousWindow(f))),
      window: windowOf(f),
      features: await featureRollup(store, f),
    });
  });

  app.get("/api/rollups/agent-runs", h.read, async (c) => {
    const f = analyticsFilter(c, h.workspaceOf, Date.now());
    return c.json({ ...(await answerWindow(f)), agent_types: await agentRunRollup(store, f) });
  });

  app.get("/api/rollups/customers", h.read, async (c) => {
    const now = Date.now();
    const f = analyticsFilter(c, h.workspaceOf, now);
    return c.json({
      ...(await answerWindow({ ...f, from: Math.min(f.from, monthWindows(now).lastMonth) })),
      window: windowOf(f),
      customers: await customerRollup(store, f, now),
    });
  });

  app.get("/api/rollups/outcomes", h.read, async (c) => {
    const f = analyticsFilter(c, h.workspaceOf, Date.now(), ["by"]);
    const by = oneOfParam(c.req.query("by"), OUTCOME_DIMENSIONS, "by") ?? "feature";
    return c.json({ ...(await answerWindow(f)), by, rows: await outcomeRollup(store, f, by) });
  });

  app.get("/api/variance", h.read, async (c) => {
    const now = Date.now();
    const q = c.req.query();
    // Default: this month so far vs the same span of last month (like for like, not a partial month vs a
    // whole one). With only `to`: the month `to` ends or falls in, so both windows follow it, not now.
    const current = analyticsFilter(c, h.workspaceOf, now, ["vs_from", "vs_to"]);
    const m = monthSoFar(q.to === undefined ? now : current.to);
    if (q.from === undefined) current.from = m.from;
    const vsFrom = timeParam(q.vs_from, "vs_from", now);
    const vsTo = timeParam(q.vs_to, "vs_to", now);
    const span = current.to - current.from;
    // A bound of the compared window given alone: the other one is the current window's length away.
    const previous: EventFilter & { from: number; to: number } =
      vsFrom !== undefined
        ? { ...current, from: vsFrom, to: vsTo ?? vsFrom + span }
        : vsTo !== undefined
          ? { ...current, from: Math.max(QUERY_TIMES.min, vsTo - span), to: vsTo }
          : q.from === undefined
            ? { ...current, from: m.previousFrom, to: m.previousTo }
            : { ...current, from: current.from - span, to: current.from };
    if (previous.to <= previous.from)
      throw badRequest("invalid_parameter", "vs_to must be after vs_from", "vs_to");
    const result = await explainChange(store, current, previous);
    const earliest = Math.min(current.from, previous.from);
    return c.json({
      ...result,
      coverage: coverageOf(await store.retention(current.workspaceId), earliest, false),
      current: windowOf(current),
      previous: windowOf(previous),
      dimensions: DRIVER_DIMENSIONS,
    });
  });

  // Raw calls, page by page (keyset cursor), for `tollgate export calls`: no analytics defaults applied.
  app.get("/api/export/calls", h.read, async (c) => {
    const now = Date.now();
    const q = c.req.query();
    onlyParams(c.req.queries(), [...FILTER_PARAMS, "limit", "cursor"]);
    const f = filterFrom(withDefaultWindow(q, now), h.workspaceOf(c, q.workspace), now);
    const limit = intParam(q.limit, "limit", 1, 100_000) ?? 10_000;
    const after = q.cursor === undefined ? null : decodeCursor(q.cursor);
    if (q.cursor !== undefined && after === null)
      throw badRequest("invalid_parameter", "cursor is not one this API gave out", "cursor");
    const page = await exportPage(store, f, after, limit);
    const head = {
      generated_at: new Date().toISOString(),
      window: windowOf({ from: f.from!, to: f.to! }),
      // Exports are of raw calls: what is past the raw horizon is gone from them.
      coverage: coverageOf(await store.retention(f.workspaceId), f.from, false),
      columns: EXPORT_COLUMNS,
    };
    return c.body(exportAnswer(head, page), 200, { "content-type": "application/json" });
  });

  app.get("/api/forecast", h.read, async (c) => {
    const now = Date.now();
    const f = analyticsFilter(c, h.workspaceOf, now);
    // The projection is of this UTC month from its own days: a window asked for would be ignored.
    for (const name of ["from", "to"])
      if (c.req.query(name) !== undefined)
        throw badRequest(
          "invalid_parameter",
          `${name} does not apply: the forecast projects this UTC month from its complete days`,
          name,
        );
    const [month, budgets, retention] = await Promise.all([
      forecastMonth(store, f, now),
      budgetBurnDown(guard, store, f.workspaceId, now),
      store.retention(f.workspaceId),
    ]);
    // It reads raw calls only, as the rollups do: days past the raw horizon are missing from it.
    return c.json({ ...month, budgets, coverage: coverageOf(retention, forecastFrom(now), false) });
  });
}
