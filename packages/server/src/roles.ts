import { ApiError } from "./errors.js";
import { classify } from "./gateway/routes.js";

/**
 * What one `tollgate serve` process does (`--role`, env TOLLGATE_ROLE). Every role listens on its port
 * and answers the ops endpoints (/healthz, /readyz, /metrics); a path of a group the role does not serve
 * answers 404 `not_served_by_role`, naming the roles that do.
 *
 * | role      | ops | ingest (/v1/events, /v1/traces) | gateway (/v1/… proxy) | lookup | API (/api/…) | jobs |
 * |-----------|-----|---------------------------------|-----------------------|--------|--------------|------|
 * | `gateway` | yes | yes                             | yes                   | yes    | no           | no   |
 * | `api`     | yes | yes                             | no                    | yes    | yes          | no   |
 * | `worker`  | yes | no                              | no                    | no     | no           | yes  |
 * | `all`     | yes | yes                             | yes                   | yes    | yes          | yes  |
 *
 * `lookup` is one call by its id (GET /api/events/:id): an app reads a gateway call's cost through the
 * same base URL it calls the gateway at, which in a scale-out deployment is a gateway replica.
 *
 * Gateways are stateless ingress (the proxy and the write-only ingest endpoints): they can be added and
 * removed at will. The API serves the query and admin endpoints (and ingest). Workers run the scheduled
 * jobs (retention today) under a job lease held in Redis, so however many run, one runs the jobs. `all`
 * (the default) is the single-process embedded server: everything, with its jobs under an in-process
 * lease, as before roles existed.
 */
export const SERVER_ROLES = ["gateway", "api", "worker", "all"] as const;
export type ServerRole = (typeof SERVER_ROLES)[number];

export const ROUTE_GROUPS = ["ops", "ingest", "gateway", "lookup", "api"] as const;
export type RouteGroup = (typeof ROUTE_GROUPS)[number];

const SERVES: Record<ServerRole, { routes: ReadonlySet<RouteGroup>; jobs: boolean }> = {
  gateway: { routes: new Set(["ops", "ingest", "gateway", "lookup"]), jobs: false },
  api: { routes: new Set(["ops", "ingest", "lookup", "api"]), jobs: false },
  worker: { routes: new Set(["ops"]), jobs: true },
  all: { routes: new Set(ROUTE_GROUPS), jobs: true },
};

export const servesRoutes = (role: ServerRole, group: RouteGroup): boolean => SERVES[role].routes.has(group);
export const runsJobs = (role: ServerRole): boolean => SERVES[role].jobs;
export const rolesServing = (group: RouteGroup): ServerRole[] =>
  SERVER_ROLES.filter((r) => servesRoutes(r, group));

/** The role from `--role`, else TOLLGATE_ROLE, else `all`; anything else is an error naming the valid ones. */
export function roleFrom(opt?: string, env = process.env): ServerRole {
  const raw = opt ?? (env.TOLLGATE_ROLE || undefined);
  if (raw === undefined) return "all";
  if ((SERVER_ROLES as readonly string[]).includes(raw)) return raw as ServerRole;
  const source = opt === undefined ? "TOLLGATE_ROLE" : "--role";
  throw new Error(`invalid ${source} ${JSON.stringify(raw)}: use one of ${SERVER_ROLES.join(", ")}`);
}

const OPS = new Set(["/healthz", "/readyz", "/metrics"]);
const INGEST = new Set(["/v1/events", "/v1/traces"]);
/** GET /api/events/:id (one path segment after /api/events/). */
const LOOKUP = /^\/api\/events\/[^/]+$/;

/** Which group a request path belongs to; null for paths of no group (they answer a plain 404). */
export function routeGroupOf(path: string): RouteGroup | null {
  if (OPS.has(path)) return "ops";
  if (INGEST.has(path)) return "ingest";
  if (LOOKUP.test(path)) return "lookup";
  if (path === "/api" || path.startsWith("/api/")) return "api";
  if (classify(path)) return "gateway";
  return null;
}

const GROUP_NAMES: Record<RouteGroup, string> = {
  ops: "the ops endpoints",
  ingest: "the ingest API",
  gateway: "the gateway",
  lookup: "the call lookup",
  api: "the query and admin API",
};

/** The 404 a role answers for a path it does not serve. */
export function notServedByRole(method: string, path: string, role: ServerRole, group: RouteGroup): ApiError {
  const servedBy = rolesServing(group);
  return new ApiError(
    404,
    "invalid_request_error",
    "not_served_by_role",
    `${method} ${path} is ${GROUP_NAMES[group]}, served by --role ${servedBy.join(" or ")}; this process runs --role ${role}`,
    undefined,
    { role, served_by: servedBy },
  );
}
