import { DATA_MODES, formatUsd, issuesToFieldErrors, type PricingEngine, UUID_RE } from "@tollgate/core";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { Registry } from "prom-client";
import { z } from "zod";
import { createKey, KeyError, KeyLookupFailed, type KeyResolver, type Principal } from "../auth/keys.js";
import { recordCostUsd } from "../cost-usd.js";
import { ApiError, badRequest } from "../errors.js";
import { MAX_BODY_BYTES, parseBatchBody, tooLarge } from "../ingest/body.js";
import { decodeContent } from "../ingest/content-encoding.js";
import { registerOtlpRoutes } from "../ingest/otlp/route.js";
import type { IngestService } from "../ingest/service.js";
import type { SpendGuard } from "../limits/guard.js";
import { keepForLimits, rawFloor } from "../limits/raw-floor.js";
import { lookupPrice } from "../prices.js";
import { coverageOf, purgeHorizons } from "../query/coverage.js";
import { notServedByRole, routeGroupOf, type ServerRole, servesRoutes } from "../roles.js";
import { workspaceRows } from "../store/rows.js";
import {
  type AnalyticsStore,
  type EventFilter,
  type EventStore,
  FILTER_FIELDS,
  KEY_DEFAULT_FIELDS,
  type KeyStore,
  ROLES,
  SPEND_DIMENSIONS,
  summaryCanAnswer,
} from "../store/types.js";
import { registerLimitRoutes } from "./limits-routes.js";
import { FILTER_PARAMS, intParam, oneOfParam, onlyParams, timeParam } from "./query-params.js";
import { registerRollupRoutes } from "./rollup-routes.js";

const KeyDefaultsSchema = z.strictObject(
  Object.fromEntries(KEY_DEFAULT_FIELDS.map((f) => [f, z.string().min(1).max(256).optional()])) as Record<
    (typeof KEY_DEFAULT_FIELDS)[number],
    z.ZodOptional<z.ZodString>
  >,
);

/**
 * POST /api/keys. Strict: a misspelt or misplaced field (`customer_id` beside `defaults`, `defualts`) would
 * otherwise create a gateway key without the attribution its caller meant to bind to it.
 */
const LABEL_RULE = "must be a string of at most 200 characters";
const CreateKeySchema = z.strictObject({
  workspace: z.string({ error: "must be a string" }).optional(),
  role: z.enum(ROLES, { error: `must be one of ${ROLES.join(", ")}` }),
  label: z.string({ error: LABEL_RULE }).max(200, LABEL_RULE).nullish(),
  defaults: KeyDefaultsSchema.nullish(),
});

const PurgeSchema = z
  .strictObject({
    raw_days: z.number().int().min(1, "raw_days must be at least 1").max(36_500).optional(),
    summary_months: z.number().int().min(1, "summary_months must be at least 1").max(1_200).optional(),
  })
  .refine(
    (b) => b.raw_days !== undefined || b.summary_months !== undefined,
    "give raw_days, summary_months or both",
  );

/** A filter value that means every value (no filter): the word that lifts the analytics defaults. */
export const EVERY_VALUE = "all";
/** The deployment the analytics default to, which records without a deployment count as wherever it is asked for. */
export const DEFAULT_DEPLOYMENT = "prod";
/** The filters that take EVERY_VALUE: the ones the analytics default (data_mode=real, deployment=prod). */
const FILTERS_TAKING_ALL: ReadonlySet<string> = new Set(["data_mode", "deployment"]);

/** data_mode in a query string: a record's mode, or `all` (every mode: no filter). */
const DataModeParam = z.enum([...DATA_MODES, EVERY_VALUE]);

export interface AppDeps {
  ingest: IngestService;
  events: EventStore & AnalyticsStore;
  keyStore: KeyStore;
  keys: KeyResolver;
  engine: PricingEngine;
  guard: SpendGuard;
  /** Operational endpoints: Prometheus metrics (their registries, served as one) and a readiness probe that throws when not ready. */
  ops?: { metrics: readonly Registry[]; ready: () => Promise<Record<string, unknown>> };
  /**
   * The server role (roles.ts): route groups the role does not serve answer 404 `not_served_by_role`.
   * Default `all`: every route.
   */
  role?: ServerRole;
}

type Env = { Variables: { principal: Principal } };

const CAN_WRITE: ReadonlySet<string> = new Set(["ingest", "admin", "root"]);
const CAN_READ: ReadonlySet<string> = new Set(["read", "admin", "root"]);
const CAN_ADMIN: ReadonlySet<string> = new Set(["admin", "root"]);
/** What acts on every workspace at once (a purge: ClickHouse drops whole months of all): no key's to do. */
const LOCAL_ADMIN: ReadonlySet<string> = new Set(["root"]);
/** A gateway key may look up the calls made through it (GET /api/events/:id), nothing else. */
const CAN_READ_OR_GATEWAY: ReadonlySet<string> = new Set([...CAN_READ, "gateway"]);

export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();

  app.onError((err, c) => {
    const e =
      err instanceof ApiError
        ? err
        : new ApiError(500, "api_error", "internal_error", "internal error; nothing was half-written");
    if (!(err instanceof ApiError)) console.error(err);
    return c.json(e.toJSON(), e.status as ContentfulStatusCode);
  });
  app.notFound((c) =>
    c.json(
      new ApiError(
        404,
        "invalid_request_error",
        "not_found",
        `no route ${c.req.method} ${c.req.path}`,
      ).toJSON(),
      404,
    ),
  );

  const role = deps.role ?? "all";
  if (role !== "all")
    app.use("*", async (c, next) => {
      const group = routeGroupOf(c.req.path);
      if (group && !servesRoutes(role, group)) throw notServedByRole(c.req.method, c.req.path, role, group);
      await next();
    });

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    try {
      return c.json({ status: "ready", role, ...(await deps.ops?.ready()) });
    } catch (e) {
      return c.json({ status: "not_ready", reason: (e as Error).message }, 503);
    }
  });

  app.get("/metrics", async (c) => {
    if (!deps.ops)
      throw new ApiError(404, "invalid_request_error", "not_found", "no metrics in this process");
    // Merged per scrape: registries gain metrics after the app is built (the jobs' own).
    const metrics = Registry.merge([...deps.ops.metrics]);
    return c.body(await metrics.metrics(), 200, { "content-type": metrics.contentType });
  });

  // The API's own bodies are small JSON (a budget with a thousand overrides is a few hundred KB): a bigger
  // one is refused as it arrives, not read into memory whole to be refused after. Past the key check: a
  // chunked body is taken in whole first, which a caller without a key must not make the server do.
  const limitBody = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw tooLarge("a policy, key or kill is far smaller");
    },
  });

  const auth =
    (allowed: ReadonlySet<string>) => async (c: import("hono").Context<Env>, next: () => Promise<void>) => {
      const header = c.req.header("authorization") ?? "";
      const key = /^bearer /i.test(header) ? header.slice(7).trim() : ""; // the scheme is case-insensitive
      if (!key)
        throw new ApiError(
          401,
          "authentication_error",
          "missing_api_key",
          "send your key as Authorization: Bearer <key> (create one with `tollgate keys create`)",
        );
      const p = await deps.keys.resolve(key).catch((e) => {
        // The store down or silent for a key it never answered for: the client may try again, as at the gateway.
        if (e instanceof KeyLookupFailed) throw new ApiError(503, "api_error", "key_unchecked", e.message);
        throw e;
      });
      if (!p) throw new ApiError(401, "authentication_error", "invalid_api_key", "this API key is not valid");
      if (!allowed.has(p.role)) {
        const roles = [...allowed].filter((r) => r !== "root");
        throw new ApiError(
          403,
          "permission_error",
          "insufficient_role",
          `${p.role === "ingest" || p.role === "admin" ? "an" : "a"} ${p.role} key cannot do this; ${
            roles.length
              ? `needs one of: ${roles.join(", ")}`
              : "it acts on every workspace, so only the server's local admin may: run the CLI where the server's data dir is"
          }`,
        );
      }
      c.set("principal", p);
      await limitBody(c, next);
    };

  /** Root (the local admin token) may pick any workspace; every other key is bound to its own. */
  const workspaceOf = (c: import("hono").Context<Env>, requested?: string | null): string => {
    const p = c.get("principal");
    // An empty one (a script's unset variable) would otherwise be the key's own workspace, asked or not.
    if (requested === "") throw badRequest("invalid_parameter", "workspace must not be empty", "workspace");
    if (requested && requested !== p.workspaceId) {
      if (p.role !== "root")
        throw new ApiError(
          403,
          "permission_error",
          "wrong_workspace",
          `this key belongs to workspace ${JSON.stringify(p.workspaceId)}`,
          "workspace",
        );
      return requested;
    }
    return p.workspaceId;
  };

  app.post(
    "/v1/events",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw tooLarge();
      },
    }),
    auth(CAN_WRITE),
    async (c) => {
      const workspace = workspaceOf(c, c.req.query("workspace"));
      // The cap holds for the inflated batch too: a gzip body may inflate to MAX_BODY_BYTES, no more.
      const body = await decodeContent(
        c.req.header("content-encoding"),
        new Uint8Array(await c.req.arrayBuffer()),
        MAX_BODY_BYTES,
      );
      const res = await deps.ingest.ingest(workspace, parseBatchBody(body));
      const status = res.rejected === 0 ? 200 : res.accepted + res.duplicates === 0 ? 422 : 207;
      return c.json(res, status);
    },
  );

  registerOtlpRoutes(app, deps.ingest, deps.events, { write: auth(CAN_WRITE), workspaceOf });

  app.get("/api/spend", auth(CAN_READ), async (c) => {
    // Required: absent, it is "" (one of none).
    const by = oneOfParam(c.req.query("by") ?? "", SPEND_DIMENSIONS, "by")!;
    onlyParams(c.req.queries(), [...FILTER_PARAMS, "by"]);
    const filter = filterFrom(c.req.query(), workspaceOf(c, c.req.query("workspace")));
    const [rows, retention] = await Promise.all([
      deps.events.spend(filter, by),
      deps.events.retention(filter.workspaceId),
    ]);
    return c.json({
      by,
      from: filter.from ?? null,
      to: filter.to ?? null,
      coverage: coverageOf(retention, filter.from, summaryCanAnswer(filter)),
      rows: rows.map((r) => ({
        ...r,
        cost_nanousd: r.cost_nanousd.toString(),
        cost_usd: formatUsd(r.cost_nanousd),
      })),
    });
  });

  app.get("/api/events", auth(CAN_READ), async (c) => {
    onlyParams(c.req.queries(), [...FILTER_PARAMS, "limit"]);
    const filter = filterFrom(c.req.query(), workspaceOf(c, c.req.query("workspace")));
    const limit = intParam(c.req.query("limit"), "limit", 1, 100_000) ?? 100;
    const rows = await deps.events.query({ ...filter, limit });
    return c.json({ events: rows.map(jsonRecord) });
  });

  app.get("/api/events/:id", auth(CAN_READ_OR_GATEWAY), async (c) => {
    onlyParams(c.req.queries(), ["workspace"]);
    const id = (c.req.param("id") ?? "").toLowerCase(); // stored lowercase, whatever the client sent
    if (!UUID_RE.test(id)) throw badRequest("invalid_parameter", "the event id must be a UUID", "id");
    const workspaceId = workspaceOf(c, c.req.query("workspace"));
    const principal = c.get("principal");
    const found = await deps.events.findEvent(workspaceId, id);
    // A gateway key reads its own calls only: the ones made through it.
    const rec = principal.role === "gateway" && found?.key_id !== principal.keyId ? null : found;
    if (!rec)
      throw new ApiError(
        404,
        "invalid_request_error",
        "event_not_found",
        `no call ${id} in workspace ${workspaceId}; a gateway call is stored within about a second of its reply (retry shortly), and another workspace's calls need that workspace's key`,
        "id",
      );
    return c.json({ event: jsonRecord(rec), cost_usd: recordCostUsd(rec) });
  });

  app.get("/api/prices/unpriced", auth(CAN_READ), async (c) => {
    const q = c.req.query();
    onlyParams(c.req.queries(), [...FILTER_PARAMS, "since"]);
    // One bound by two names: with both, one would be dropped unread.
    if (q.since !== undefined && q.from !== undefined)
      throw badRequest("invalid_parameter", "give since or from, not both: they are the same bound", "since");
    const filter = filterFrom(q, workspaceOf(c, q.workspace));
    filter.from ??= timeParam(q.since ?? "7d", "since");
    return c.json({ models: await deps.events.unpriced(filter) });
  });

  app.get("/api/prices/lookup", (c) => {
    onlyParams(c.req.queries(), ["model", "provider"]);
    const model = c.req.query("model");
    if (!model) throw badRequest("missing_parameter", "model is required", "model");
    return c.json(lookupPrice(deps.engine, c.req.query("provider") ?? null, model, Date.now()));
  });

  // Retention: raw events older than raw_days, summary days older than summary_months (whole UTC months).
  app.post("/api/admin/purge", auth(LOCAL_ADMIN), async (c) => {
    onlyParams(c.req.queries(), []);
    const body = await c.req.json().catch(() => {
      throw badRequest("invalid_json", 'body must be JSON: {"raw_days"?, "summary_months"?}');
    });
    const parsed = PurgeSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw badRequest("invalid_parameter", issue.message, issue.path.join(".") || undefined);
    }
    const now = Date.now();
    const horizons = purgeHorizons(now, parsed.data.raw_days ?? null, parsed.data.summary_months ?? null);
    // Raw calls a budget's window or an agent run still counts stay: limits are rebuilt from them.
    const { rawBefore, keptFor } = keepForLimits(horizons.rawBefore, rawFloor(deps.guard.registry, now));
    const { summaryBefore } = horizons;
    const res = await deps.events.purge(rawBefore, summaryBefore);
    return c.json({
      ...res,
      raw_before: rawBefore === null ? null : new Date(rawBefore).toISOString(),
      summary_before: summaryBefore === null ? null : new Date(summaryBefore).toISOString(),
      raw_kept_for_limits: keptFor,
    });
  });

  app.post("/api/keys", auth(CAN_ADMIN), async (c) => {
    onlyParams(c.req.queries(), []); // the workspace is named in the body
    const body = await c.req.json().catch(() => {
      throw badRequest("invalid_json", 'body must be JSON: {"workspace", "role", "label"?, "defaults"?}');
    });
    const parsed = CreateKeySchema.safeParse(body);
    if (!parsed.success) {
      const { field, reason } = issuesToFieldErrors(parsed.error.issues)[0]!;
      const param = field === "(record)" ? undefined : field;
      throw badRequest("invalid_parameter", `${field}: ${reason}`, param);
    }
    const { role, label, defaults } = parsed.data;
    const workspace = workspaceOf(c, parsed.data.workspace);
    try {
      const { key, record } = await createKey(deps.keyStore, {
        workspace,
        role,
        label: label ?? null,
        defaults: defaults ?? {},
      });
      return c.json(
        { key, id: record.id, workspace: record.workspace_id, role: record.role, defaults: record.defaults },
        201,
      );
    } catch (e) {
      if (e instanceof KeyError) throw badRequest("invalid_parameter", `${e.param} ${e.message}`, e.param);
      throw e;
    }
  });

  app.get("/api/keys", auth(CAN_ADMIN), async (c) => {
    onlyParams(c.req.queries(), ["workspace"]);
    const p = c.get("principal");
    const requested = c.req.query("workspace");
    // Root without ?workspace sees every workspace's keys; everyone else only their own.
    const workspace = p.role === "root" && requested === undefined ? undefined : workspaceOf(c, requested);
    return c.json({ keys: await deps.keyStore.listKeys(workspace) });
  });

  // What a read may name, with whether it holds calls: a workspace nothing names (no call, key or limit) is a
  // mistyped one, which analytics would answer as no spend at all (the CLI says so). Root sees every one,
  // any other key its own.
  app.get("/api/workspaces", auth(CAN_READ), async (c) => {
    onlyParams(c.req.queries(), []);
    const p = c.get("principal");
    const stored = await deps.events.workspaces();
    const all = workspaceRows(
      [...stored.map((w) => w.id), ...deps.guard.registry.workspaces()],
      stored.filter((w) => w.calls).map((w) => w.id),
    );
    return c.json({ workspaces: p.role === "root" ? all : all.filter((w) => w.id === p.workspaceId) });
  });

  // One workspace of that list, asked by its id: what a command checks before it reads, without a list of
  // thousands. Its 404 is `workspace_not_found`, not the `not_found` of a route a server lacks.
  app.get("/api/workspaces/:id", auth(CAN_READ), async (c) => {
    onlyParams(c.req.queries(), []);
    const id = workspaceOf(c, c.req.param("id"));
    const limitsOnly = deps.guard.registry.workspaces().includes(id) ? { id, calls: false } : null;
    const row = (await deps.events.workspace(id)) ?? limitsOnly;
    if (!row)
      throw new ApiError(
        404,
        "invalid_request_error",
        "workspace_not_found",
        `no workspace ${JSON.stringify(id)}: no call, key or limit names it`,
        "id",
      );
    return c.json(row);
  });

  app.delete("/api/keys/:id", auth(CAN_ADMIN), async (c) => {
    onlyParams(c.req.queries(), ["workspace"]);
    const workspace = workspaceOf(c, c.req.query("workspace"));
    const id = c.req.param("id") ?? "";
    if (!(await deps.keyStore.revokeKey(workspace, id)))
      throw new ApiError(
        404,
        "invalid_request_error",
        "key_not_found",
        `no live key ${id} in workspace ${workspace}`,
        "id",
      );
    deps.keys.invalidate();
    return c.json({ revoked: id, workspace });
  });

  registerLimitRoutes(app, deps.guard, { read: auth(CAN_READ), admin: auth(CAN_ADMIN), workspaceOf });
  registerRollupRoutes(app, deps.events, deps.guard, { read: auth(CAN_READ), workspaceOf });

  return app;
}

/**
 * Query-string → EventFilter: from/to as ISO or relative ("7d"), `to` after `from` when both are given,
 * exact-match attribution filters; `data_mode` one of the modes, or `all`; `deployment=all` is every
 * deployment, as on the rollup routes (so a deployment named "all" cannot be picked out), and
 * `deployment=prod` counts records without a deployment too, so every route's prod is one amount.
 */
export function filterFrom(
  q: Record<string, string | undefined>,
  workspaceId: string,
  now = Date.now(),
): EventFilter {
  const from = timeParam(q.from, "from", now);
  const to = timeParam(q.to, "to", now);
  if (from !== undefined && to !== undefined && to <= from)
    throw badRequest(
      "invalid_parameter",
      `to must be after from (from=${q.from} is ${new Date(from).toISOString()}, to=${q.to} is ${new Date(to).toISOString()})`,
      "to",
    );
  const filter: EventFilter = {
    workspaceId,
    where: {},
    ...(from !== undefined ? { from } : {}),
    ...(to !== undefined ? { to } : {}),
  };
  for (const k of FILTER_FIELDS) {
    const v = q[k];
    if (v === undefined) continue;
    // "none" is not a value the stores agree on (ClickHouse keeps it as ''), so it is not a filter either.
    if (v === "") throw badRequest("invalid_parameter", `${k} must not be empty`, k);
    // A mode that no record can have would answer an empty window, as if nothing had been spent.
    if (k === "data_mode") oneOfParam(v, DataModeParam.options, k);
    if (v === EVERY_VALUE && FILTERS_TAKING_ALL.has(k)) continue;
    if (k === "deployment" && v === DEFAULT_DEPLOYMENT) {
      filter.deploymentOrUnset = v;
      continue;
    }
    filter.where![k] = k === "event_id" ? v.toLowerCase() : v;
  }
  return filter;
}

/** Records as JSON: bigint money as strings (int64 does not fit a JSON number). */
export function jsonRecord(r: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v]));
}
