import { formatUsd, LIMIT_ID_RE } from "@tollgate/core";
import type { Context, Hono } from "hono";
import type { Principal } from "../auth/keys.js";
import { ApiError, badRequest } from "../errors.js";
import type { BudgetBucketStatus, SpendGuard } from "../limits/guard.js";
import { PolicyError } from "../limits/policies.js";
import { LIMIT_EVENT_TYPES, type PolicyKind } from "../store/types.js";
import { oneOfParam, onlyParams, timeParam } from "./query-params.js";

type Env = { Variables: { principal: Principal } };
type Middleware = (c: Context<Env>, next: () => Promise<void>) => Promise<void>;

export interface LimitRouteHelpers {
  read: Middleware;
  admin: Middleware;
  workspaceOf: (c: Context<Env>, requested?: string | null) => string;
}

/** The most limit events one answer holds, oldest first: a later `from` reads on. */
export const MAX_LIMIT_EVENTS = 10_000;

/** Who changed a policy, for the audit trail: the key id (never the secret). */
const actorOf = (p: Principal) => (p.role === "root" ? "local-admin" : `key:${p.keyId}`);

const PATHS: Record<string, PolicyKind> = { budgets: "budget", "rate-limits": "rate_limit", agents: "agent" };

function runIdParam(c: Context<Env>): string {
  const id = c.req.param("id") ?? "";
  if (id.length < 1 || id.length > 256)
    throw badRequest("invalid_parameter", "run id must be 1-256 characters", "id");
  return id;
}

function idParam(c: Context<Env>, name = "id"): string {
  const id = c.req.param(name) ?? "";
  if (!LIMIT_ID_RE.test(id))
    throw badRequest("invalid_parameter", `${name} must be 1-128 letters, digits, _ . : -`, name);
  return id;
}

/** A kill's optional body, `{"reason": "…"}` (no body at all is fine). */
async function killReason(c: Context<Env>): Promise<string | undefined> {
  const text = await c.req.text();
  if (text.trim() === "") return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw badRequest("invalid_json", 'body must be JSON: {"reason": "…"} (or empty)');
  }
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw badRequest("invalid_parameter", 'body must be a JSON object: {"reason": "…"}');
  for (const k of Object.keys(body))
    if (k !== "reason") throw badRequest("invalid_parameter", `${k}: unknown field`, k);
  const { reason } = body as { reason?: unknown };
  if (reason === undefined) return undefined;
  if (typeof reason !== "string" || reason.length < 1 || reason.length > 500)
    throw badRequest("invalid_parameter", "reason must be a string of 1-500 characters", "reason");
  return reason;
}

async function jsonBody(c: Context<Env>): Promise<unknown> {
  return c.req.json().catch(() => {
    throw badRequest("invalid_json", "body must be a JSON object");
  });
}

function policyFailure(e: unknown): never {
  if (e instanceof PolicyError) {
    const first = e.errors[0];
    throw new ApiError(
      e.status,
      "invalid_request_error",
      e.status === 409 ? "policy_in_limits_file" : "invalid_policy",
      e.message,
      first?.field,
      { errors: e.errors },
    );
  }
  throw e;
}

function statusJson(s: BudgetBucketStatus) {
  return {
    bucket: s.bucket,
    state: s.state,
    limit_usd: formatUsd(s.limit),
    spend_usd: formatUsd(s.spend),
    reserved_usd: formatUsd(s.reserved),
    remaining_usd: formatUsd(s.limit > s.spend + s.reserved ? s.limit - s.spend - s.reserved : 0n),
    spend_nanousd: s.spend.toString(),
    reserved_nanousd: s.reserved.toString(),
    window_start: new Date(s.window_start).toISOString(),
    reset_at: s.reset_at === null ? null : new Date(s.reset_at).toISOString(),
  };
}

/** Budgets, rate limits and agent ceilings (CRUD, audited), budget status, runs (kill/unkill), limit events. */
export function registerLimitRoutes(app: Hono<Env>, guard: SpendGuard, h: LimitRouteHelpers): void {
  const registry = guard.registry;
  /** The workspace a limits route acts on, once its query string holds only `workspace` and `also`. */
  const workspaceParam = (c: Context<Env>, also: readonly string[] = []) => {
    onlyParams(c.req.queries(), ["workspace", ...also]);
    return h.workspaceOf(c, c.req.query("workspace"));
  };
  const notFound = (what: string, id: string) =>
    new ApiError(
      404,
      "invalid_request_error",
      "not_found",
      `no ${what} ${JSON.stringify(id)} in this workspace`,
      "id",
    );

  for (const [path, kind] of Object.entries(PATHS)) {
    const put = async (c: Context<Env>, id: string | null) => {
      const ws = workspaceParam(c);
      const { entry, created, seed } = await registry
        .put(ws, kind, id, await jsonBody(c), actorOf(c.get("principal")))
        .catch(policyFailure);
      if (seed) await guard.budgetAdded(ws, entry.id);
      return c.json(
        {
          id: entry.id,
          [kind]: entry.spec,
          source: entry.source,
          updated_at: entry.updated_at,
          updated_by: entry.updated_by,
        },
        created ? 201 : 200,
      );
    };
    // POST creates or replaces by the body's id; PUT names it in the path (agents: the agent_type).
    if (kind !== "agent") app.post(`/api/${path}`, h.admin, (c) => put(c, null));
    app.put(`/api/${path}/:id`, h.admin, (c) => put(c, idParam(c)));
    app.delete(`/api/${path}/:id`, h.admin, async (c) => {
      const ws = workspaceParam(c);
      const id = idParam(c);
      if (!(await registry.delete(ws, kind, id, actorOf(c.get("principal"))).catch(policyFailure)))
        throw notFound(kind, id);
      return c.json({ deleted: id, kind });
    });
    app.get(`/api/${path}/:id/audit`, h.admin, async (c) => {
      const ws = workspaceParam(c);
      const id = idParam(c);
      const audit = await guard.auditOf(ws, kind, id);
      // A deleted policy still has its history (a limits file's none); an id that never was is a typo.
      if (!audit.length && !registry.get(ws, kind, id)) throw notFound(kind, id);
      return c.json({ audit });
    });
    if (kind === "budget") continue; // budgets list and show their live status below
    app.get(`/api/${path}`, h.read, (c) => {
      const ws = workspaceParam(c);
      return c.json({
        [path]: registry.list(ws, kind).map((e) => ({ id: e.id, source: e.source, spec: e.spec })),
      });
    });
  }

  app.get("/api/budgets", h.read, async (c) => {
    const ws = workspaceParam(c);
    const budgets = registry.forWorkspace(ws).budgets;
    const out = [];
    for (const b of budgets) {
      const entry = registry.get(ws, "budget", b.id)!;
      out.push({
        id: b.id,
        source: entry.source,
        budget: b.spec,
        buckets: (await guard.budgetStatus(ws, b)).map(statusJson),
      });
    }
    return c.json({ budgets: out });
  });

  app.get("/api/budgets/:id", h.read, async (c) => {
    const ws = workspaceParam(c);
    const id = idParam(c);
    const b = registry.forWorkspace(ws).budgets.find((x) => x.id === id);
    if (!b) throw notFound("budget", id);
    const buckets = (await guard.budgetStatus(ws, b)).map(statusJson);
    // A budget without "*" fields has one bucket: its figures are also given at the top level.
    return c.json({
      id,
      source: registry.get(ws, "budget", id)!.source,
      budget: b.spec,
      ...(buckets.length === 1 ? buckets[0] : {}),
      buckets,
    });
  });

  app.get("/api/runs/:id", h.read, async (c) => {
    const ws = workspaceParam(c);
    const id = runIdParam(c);
    await guard.unstoredCounted(); // its spooled calls count first
    const run = await guard.store.run(ws, `r:${id}`);
    if (!run) throw notFound("agent run", id);
    return c.json({
      id,
      state: run.killed ? "killed" : "running",
      killed: run.killed,
      usage: {
        ...run.usage,
        cost_nanousd: run.usage.cost_nanousd.toString(),
        cost_usd: formatUsd(run.usage.cost_nanousd),
      },
    });
  });

  app.post("/api/runs/:id/kill", h.admin, async (c) => {
    const ws = workspaceParam(c);
    const id = runIdParam(c);
    const reason = await killReason(c);
    const { kill, callsSeen } = await guard.killRun(ws, id, actorOf(c.get("principal")), reason);
    return c.json({ id, state: "killed", killed: kill, calls_seen: callsSeen });
  });

  app.post("/api/runs/:id/unkill", h.admin, async (c) => {
    const ws = workspaceParam(c);
    const id = runIdParam(c);
    const was = await guard.unkillRun(ws, id, actorOf(c.get("principal")));
    return c.json({ id, state: "running", was_killed: was });
  });

  app.get("/api/limit-events", h.read, async (c) => {
    const ws = workspaceParam(c, ["from", "type", "subject"]);
    const subject = c.req.query("subject");
    // An empty subject, or a type no event has, would answer every event, or none, as if that were all.
    if (subject === "") throw badRequest("invalid_parameter", "subject must not be empty", "subject");
    // One more than an answer holds: whether there were more to show, for `truncated` to say so.
    const rows = await guard.events.limitEvents(ws, {
      from: timeParam(c.req.query("from"), "from"),
      type: oneOfParam(c.req.query("type"), LIMIT_EVENT_TYPES, "type"),
      subject,
      limit: MAX_LIMIT_EVENTS + 1,
    });
    return c.json({
      truncated: rows.length > MAX_LIMIT_EVENTS,
      events: rows.slice(0, MAX_LIMIT_EVENTS).map((r) => ({
        ...r,
        ts: new Date(r.ts).toISOString(),
        spend_nanousd: r.spend_nanousd?.toString() ?? null,
        limit_nanousd: r.limit_nanousd?.toString() ?? null,
      })),
    });
  });
}
