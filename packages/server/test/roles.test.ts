// serve --role: which route groups each role answers, the error for the others, jobs only where they run,
// and the CLI's validation of --role / TOLLGATE_ROLE.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { roleFrom, routeGroupOf, SERVER_ROLES, type ServerRole } from "../src/roles.js";
import { spawnCli } from "./cli-run.js";
import { type Json, startTestGateway, validRecord } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";

type Server = Awaited<ReturnType<typeof startTestGateway>>;

let mock: MockUpstream;
const servers = {} as Record<ServerRole, Server>;

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 0 });
  await Promise.all(
    SERVER_ROLES.map(async (role) => {
      servers[role] = await startTestGateway(mock.url, {}, { role });
    }),
  );
});
afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.stop()));
  await mock?.close();
});

async function call(role: ServerRole, method: string, path: string, body?: unknown) {
  const s = servers[role];
  const res = await fetch(s.url + path, {
    method,
    headers: {
      // Tollgate's own endpoints take its key; the gateway passes the provider's key through
      authorization: routeGroupOf(path) === "gateway" ? "Bearer sk-test" : `Bearer ${s.runtime.rootToken}`,
      "content-type": "application/json",
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: Json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

const chat = { model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] };
const ingested = validRecord();
// In this order: the lookup reads the call the ingest request stored (on the roles that serve both).
const REQUESTS = {
  ingest: ["POST", "/v1/events", [ingested]],
  gateway: ["POST", "/v1/chat/completions", chat],
  lookup: ["GET", `/api/events/${ingested.event_id}`],
  api: ["GET", "/api/spend?by=feature"],
} as const;
const SERVED: Record<ServerRole, (keyof typeof REQUESTS)[]> = {
  gateway: ["ingest", "gateway", "lookup"],
  api: ["ingest", "lookup", "api"],
  worker: [],
  all: ["ingest", "gateway", "lookup", "api"],
};
const SERVED_BY = {
  ingest: ["gateway", "api", "all"],
  gateway: ["gateway", "all"],
  lookup: ["gateway", "api", "all"],
  api: ["api", "all"],
};

describe("serve --role", () => {
  for (const role of SERVER_ROLES)
    it(`${role}: answers ${SERVED[role].join(" + ") || "no"} routes (and the ops endpoints); the rest say which role serves them`, async () => {
      for (const [group, [method, path, body]] of Object.entries(REQUESTS) as [
        keyof typeof REQUESTS,
        (typeof REQUESTS)[keyof typeof REQUESTS],
      ][]) {
        const r = await call(role, method, path, body === undefined ? undefined : structuredClone(body));
        if (SERVED[role].includes(group)) {
          expect(r.status, `${role} ${path}: ${r.text}`).toBe(200);
          if (group === "lookup") expect(r.json.event.event_id).toBe(ingested.event_id);
        } else {
          expect(r.status, `${role} ${path}`).toBe(404);
          expect(r.json.error).toMatchObject({
            type: "invalid_request_error",
            code: "not_served_by_role",
            role,
            served_by: SERVED_BY[group],
          });
          expect(r.json.error.message).toContain(`this process runs --role ${role}`);
          expect(r.json.error.message).toContain(`served by --role ${SERVED_BY[group].join(" or ")}`);
        }
      }
      // ops endpoints on every role; the job lease only where jobs run
      expect((await call(role, "GET", "/healthz")).status).toBe(200);
      const ready = await call(role, "GET", "/readyz");
      expect(ready.status).toBe(200);
      expect(ready.json.role).toBe(role);
      const metrics = await call(role, "GET", "/metrics");
      expect(metrics.status).toBe(200);
      const runsJobs = role === "worker" || role === "all";
      if (runsJobs) {
        expect(metrics.text).toMatch(/^tollgate_job_lease_held\{backend="in-process"\} 1$/m);
        expect(ready.json.jobs).toMatchObject({ lease: "held", backend: "in-process" });
        expect(servers[role].jobs).not.toBeNull();
      } else {
        expect(metrics.text).not.toContain("tollgate_job_lease_held");
        expect(ready.json.jobs).toBeUndefined();
        expect(servers[role].jobs).toBeNull();
      }
      // a path of no group is a plain 404 everywhere
      expect((await call(role, "GET", "/nope")).json.error.code).toBe("not_found");
    });

  it("OTLP ingest is on the gateway; a gateway pass-through path is on the api role's error list", async () => {
    const traces = await call("gateway", "POST", "/v1/traces", { resourceSpans: [] });
    expect(traces.status, traces.text).toBe(200);
    expect((await call("worker", "POST", "/v1/traces", {})).json.error.code).toBe("not_served_by_role");
    const models = await call("api", "GET", "/v1/models");
    expect(models.json.error).toMatchObject({ code: "not_served_by_role", served_by: ["gateway", "all"] });
    expect(routeGroupOf("/v1/messages")).toBe("gateway");
    expect(routeGroupOf("/api/keys")).toBe("api");
    expect(routeGroupOf("/api/events")).toBe("api"); // the search; one call by id is the lookup
    expect(routeGroupOf("/api/events/0193d7c5-4b7e-7000-8000-000000000000")).toBe("lookup");
    expect(routeGroupOf("/metrics")).toBe("ops");
  });

  it("--role beats TOLLGATE_ROLE, which beats the default (all)", () => {
    expect(roleFrom(undefined, {})).toBe("all");
    expect(roleFrom(undefined, { TOLLGATE_ROLE: "worker" })).toBe("worker");
    expect(roleFrom("api", { TOLLGATE_ROLE: "worker" })).toBe("api");
    expect(() => roleFrom(undefined, { TOLLGATE_ROLE: "gw" })).toThrow(/TOLLGATE_ROLE "gw"/);
  });
});

describe("tollgate serve --role (CLI)", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "tollgate-roles-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
  const serve = (args: string[], env: Record<string, string> = {}) =>
    spawnCli(["--data-dir", dataDir, "serve", ...args], {
      env: { ...process.env, TOLLGATE_ROLE: "", ...env },
      timeoutMs: 30_000,
    });

  it("an invalid --role or TOLLGATE_ROLE fails with exit code 2, listing the valid roles", async () => {
    const bad = await serve(["--role", "bogus", "--port", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('invalid --role "bogus": use one of gateway, api, worker, all');
    const env = await serve(["--port", "0"], { TOLLGATE_ROLE: "nope" });
    expect(env.code).toBe(2);
    expect(env.err).toContain('invalid TOLLGATE_ROLE "nope": use one of gateway, api, worker, all');
    const demo = await serve(["--role", "worker", "--demo"]);
    expect(demo.code).toBe(2);
    expect(demo.err).toContain("--role worker does not serve");
  });

  it("serve --help describes --role", async () => {
    const help = await serve(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("--role <role>");
    expect(help.out).toMatch(/gateway\|api\|worker\|all/);
    expect(help.out).toContain("TOLLGATE_ROLE");
    expect(help.out).toContain("TOLLGATE_BACKGROUND_NICE");
  });
});
