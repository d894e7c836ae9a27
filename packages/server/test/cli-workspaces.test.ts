// A mistyped -w / --workspace: the analytics answer a workspace nothing names as one with no spend, so the
// commands that read calls refuse it, naming the known ones; one that exists without calls is read, noted.
import { existsSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { uuidv7 } from "@tollgate/core";
import { beforeAll, describe, expect, it } from "vitest";
import { cliOnScratchDir, spawnCli } from "./cli-run.js";
import { stubServerFor } from "./cli-stub-server.js";

const { dir, tollgate } = cliOnScratchDir("tollgate-cli-workspaces-");

beforeAll(async () => {
  for (const workspace of ["prod", "staging"]) {
    const file = join(dir, `${workspace}.jsonl`);
    const call = { provider: "openai", model: "gpt-4o-mini", input_uncached_tokens: 10, output_tokens: 5 };
    writeFileSync(file, JSON.stringify({ ...call, event_id: uuidv7(), ts_start: Date.now() - 60_000 }));
    const r = await tollgate("ingest", file, "-w", workspace, "--json");
    expect(r.code, r.err).toBe(0);
  }
  expect((await tollgate("keys", "create", "--workspace", "fresh", "--role", "read")).code).toBe(0);
  const budget = await tollgate(
    "budgets",
    "set",
    "cap",
    "--window",
    "day",
    "--limit",
    "1.00",
    "-w",
    "capped",
  );
  expect(budget.code, budget.err).toBe(0);
}, 60_000);

/** Every command that reads a workspace's calls, with what it needs besides the workspace. */
const READS = [
  ["spend", "--by", "feature"],
  ["rollup", "features"],
  ["explain"],
  ["forecast"],
  ["prices", "unpriced"],
  ["export", "calls", "-o", join(dir, "calls.csv")],
  ["export", "rollup", "features", "-o", join(dir, "features.csv")],
];

describe("a workspace no call, key or limit names (a mistyped -w)", () => {
  it("is a usage error naming the known workspaces (exit 2), --json too, for every command that reads calls", async () => {
    for (const args of READS)
      for (const json of [[], ["--json"]]) {
        const r = await tollgate(...args, "-w", "prdo", ...json);
        expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
        expect(r.err).toBe(
          'error: workspace "prdo" does not exist: no call, key or limit names it (-w, --workspace); ' +
            "known workspaces: capped, default, fresh, prod, staging\n",
        );
        expect(r.out).toBe("");
      }
    expect(existsSync(join(dir, "calls.csv"))).toBe(false);
    expect(existsSync(join(dir, "features.csv"))).toBe(false);
  });
});

describe("a workspace that exists but holds no calls", () => {
  it("is read as asked (exit 0, --json as ever), with a note on stderr naming the workspaces with calls", async () => {
    for (const workspace of ["fresh", "capped", "default"]) {
      const r = await tollgate("spend", "--by", "feature", "-w", workspace, "--json");
      expect(r.code, r.err).toBe(0);
      expect(JSON.parse(r.out).rows).toEqual([]);
      expect(r.err).toBe(
        `note: workspace "${workspace}" has no calls recorded; workspaces with calls: prod, staging\n`,
      );
    }
  });

  it("one with calls is read without a word", async () => {
    for (const args of READS) {
      const r = await tollgate(...args, "-w", "prod", "--json");
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(0);
      expect(r.err).toBe("");
    }
  });
});

/** Every command that reads a workspace's budgets, agent types or keys. */
const LIMIT_READS = [
  ["budgets", "status"],
  ["agents", "list"],
  ["keys", "list"],
];

describe("a mistyped -w on a command that reads limits or keys", () => {
  it("is a usage error naming the known workspaces (exit 2)", async () => {
    for (const args of LIMIT_READS) {
      const r = await tollgate(...args, "-w", "prdo", "--json");
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.out).toBe("");
      expect(r.err).toContain('workspace "prdo" does not exist');
    }
  });

  it("a workspace without calls (budgets only) is read without a word", async () => {
    for (const args of LIMIT_READS) {
      const r = await tollgate(...args, "-w", "capped", "--json");
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(0);
      expect(r.err).toBe("");
    }
    expect(
      JSON.parse((await tollgate("budgets", "status", "-w", "capped", "--json")).out).budgets,
    ).toHaveLength(1);
  });
});

/**
 * A server of many workspaces (one per customer), `prod` among them, recording what it is asked; without the
 * GET /api/workspaces/:id route (`lookup: false`: a server older than the CLI, whose list says as much).
 */
function manyWorkspacesServer(lookup: boolean) {
  const asked: string[] = [];
  const known = [
    { id: "prod", calls: true },
    ...Array.from({ length: 5_000 }, (_, i) => ({ id: `customer-${i}`, calls: true })),
  ];
  const server = createServer((req, res) => {
    req.resume();
    const path = new URL(req.url ?? "", "http://x").pathname;
    asked.push(path);
    const reply = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    const one = lookup && /^\/api\/workspaces\/([^/]+)$/.exec(path);
    if (one) {
      const found = known.find((w) => w.id === decodeURIComponent(one[1]!));
      if (found) return reply(200, found);
      return reply(404, {
        error: {
          type: "invalid_request_error",
          code: "workspace_not_found",
          message: "no such",
          param: "id",
        },
      });
    }
    if (path === "/api/workspaces") return reply(200, { workspaces: known });
    if (path === "/api/spend") return reply(200, { rows: [], total: { calls: 0 } });
    if (path === "/api/budgets") return reply(200, { budgets: [] });
    reply(404, {
      error: { type: "invalid_request_error", code: "not_found", message: `no route GET ${path}` },
    });
  });
  const dataDir = join(dir, lookup ? "many" : "many-older");
  stubServerFor(dataDir, server);
  /** The CLI on that server: its outcome, and the paths it asked for. */
  return async (...args: string[]) => {
    asked.length = 0;
    const r = await spawnCli(["--data-dir", dataDir, ...args]);
    return { ...r, asked: [...asked] };
  };
}

const many = manyWorkspacesServer(true);
const manyOlder = manyWorkspacesServer(false);

describe("the check of a workspace among many", () => {
  it("asks the server about that workspace only, not for the list of every one, when it exists", async () => {
    for (const [args, read] of [
      [["spend", "--by", "feature"], "/api/spend"],
      [["budgets", "status"], "/api/budgets"],
    ] as const) {
      const r = await many(...args, "-w", "prod", "--json");
      expect(r.code, r.err).toBe(0);
      expect(r.err).toBe("");
      expect(r.asked).toEqual(["/api/workspaces/prod", read]);
    }
  });

  it("fetches the list only to name the known ones when the workspace does not exist", async () => {
    const r = await many("spend", "--by", "feature", "-w", "prdo");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /^error: workspace "prdo" does not exist: .*; known workspaces: prod, customer-0, /,
    );
    expect(r.asked).toEqual(["/api/workspaces/prdo", "/api/workspaces"]);
  });

  it("on a server without GET /api/workspaces/:id, checks the workspace in the list as before", async () => {
    const known = await manyOlder("spend", "--by", "feature", "-w", "prod", "--json");
    expect(known.code, known.err).toBe(0);
    expect(known.asked).toEqual(["/api/workspaces/prod", "/api/workspaces", "/api/spend"]);
    const typo = await manyOlder("budgets", "status", "-w", "prdo");
    expect(typo.code).toBe(2);
    expect(typo.err).toContain('error: workspace "prdo" does not exist');
    expect(typo.asked).toEqual(["/api/workspaces/prdo", "/api/workspaces"]);
  });
});

/** A server older than the CLI: no /api/workspaces (its 404 names no route), its spend as ever. */
const olderDir = join(dir, "older");
stubServerFor(
  olderDir,
  createServer((req, res) => {
    req.resume();
    const reply = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.url?.startsWith("/api/spend")) return reply(200, { rows: [], total: { calls: 0 } });
    reply(404, {
      error: { type: "invalid_request_error", code: "not_found", message: `no route GET ${req.url}` },
    });
  }),
);

describe("a server older than the CLI (no /api/workspaces)", () => {
  it("reads the workspace as asked, unchecked", async () => {
    const r = await spawnCli(["--data-dir", olderDir, "spend", "--by", "feature", "-w", "prdo", "--json"]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ rows: [], total: { calls: 0 } });
  });
});
