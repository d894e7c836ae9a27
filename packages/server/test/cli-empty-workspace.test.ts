// An empty -w names no workspace, nor does a blank one (only whitespace): every command taking -w refuses
// them as a usage error (exit 2), before it does anything. Each had read an empty one as its own "no
// workspace": the key's own (`default`) for keys create, ingest or a budget, every one for keys list, one
// that does not exist for the reading commands; demo and agents set wrote into a blank one.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cliOnScratchDir } from "./cli-run.js";

const { dir, dataDir, tollgate } = cliOnScratchDir("tollgate-cli-empty-workspace-");
beforeAll(() => mkdirSync(dataDir));

/** Every command taking -w, with the arguments and options it requires. */
const COMMANDS = [
  ["keys", "create", "-r", "admin"],
  ["keys", "list"],
  ["keys", "revoke", "some-key-id"],
  ["ingest", join(dir, "events.jsonl")],
  ["demo", "--days", "1"],
  ["events", "get", "some-event-id"],
  ["spend", "--by", "feature"],
  ["rollup", "features"],
  ["explain"],
  ["forecast"],
  ["prices", "unpriced"],
  ["export", "calls", "-o", join(dir, "calls.csv")],
  ["export", "rollup", "features", "-o", join(dir, "features.csv")],
  ["budgets", "set", "--window", "day", "--limit", "1.00"],
  ["budgets", "status"],
  ["budgets", "delete", "some-budget"],
  ["budgets", "audit", "some-budget"],
  ["runs", "status", "some-run"],
  ["runs", "kill", "some-run"],
  ["runs", "unkill", "some-run"],
  ["agents", "set", "some-agent", "--max-cost", "1"],
  ["agents", "list"],
];

describe("an empty -w / --workspace", () => {
  it("is a usage error naming the flag for every command taking it (exit 2), and nothing is done", async () => {
    for (const args of [...COMMANDS.map((c) => [...c, "-w", ""]), ["keys", "list", "--workspace="]]) {
      const r = await tollgate(...args);
      expect(r.err, args.join(" ")).toBe("error: -w/--workspace must not be empty\n");
      expect(r.code).toBe(2);
    }
    await expectNothingDone();
  });
});

describe("a blank -w / --workspace (only whitespace)", () => {
  it("is a usage error as an empty one is (exit 2), and nothing is done", async () => {
    // The check is the program's, before any command's action: the commands that write, and two that read.
    const writers = COMMANDS.filter(
      ([c, s]) => ["ingest", "demo"].includes(c!) || s === "create" || s === "set",
    );
    for (const [args, blank] of [
      ...writers.map((c) => [c, " "] as const),
      [["spend", "--by", "feature"], "\t"],
      [["export", "calls", "-o", join(dir, "calls.csv")], " \n "],
    ] as const) {
      const r = await tollgate(...args, "-w", blank);
      expect(r.err, `${args.join(" ")} -w ${JSON.stringify(blank)}`).toBe(
        "error: -w/--workspace must not be blank\n",
      );
      expect(r.code).toBe(2);
    }
    await expectNothingDone();
  });
});

describe("a -w with spaces around a name", () => {
  it("is a usage error naming the name meant (exit 2), and nothing is done", async () => {
    const writers = COMMANDS.filter(([c, s]) => ["demo"].includes(c!) || s === "create" || s === "set");
    for (const [args, spaced] of [
      ...writers.map((c) => [c, " prod"] as const),
      [["spend", "--by", "feature"], "prod "],
      [["export", "calls", "-o", join(dir, "calls.csv")], "\tprod"],
    ] as const) {
      const r = await tollgate(...args, "-w", spaced);
      expect(r.err, `${args.join(" ")} -w ${JSON.stringify(spaced)}`).toBe(
        `error: -w/--workspace ${JSON.stringify(spaced)} has spaces around it: did you mean "prod"?\n`,
      );
      expect(r.code).toBe(2);
    }
    await expectNothingDone();
  });
});

/**
 * keys create made no key (in `default`, as an empty -w did), nor demo, ingest, budgets or agents set any
 * data: `default` is still the only workspace known.
 */
async function expectNothingDone() {
  const known = await tollgate("forecast", "-w", "no-such-workspace");
  expect(known.err).toMatch(/; known workspaces: default\n$/);
  const keys = await tollgate("keys", "list", "--json");
  expect(keys.code, keys.err).toBe(0);
  expect(JSON.parse(keys.out).keys).toEqual([]);
  const budgets = await tollgate("budgets", "status", "--json");
  expect(budgets.code, budgets.err).toBe(0);
  expect(JSON.parse(budgets.out)).toMatchObject({ budgets: [] });
}
