// The CLI as a platform engineer and a FinOps analyst meet it: usage errors, exit codes, and figures that
// must agree with each other and with what was recorded.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { uuidv7 } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliOnScratchDir, spawnCli } from "./cli-run.js";
import { remountReadOnly, smallDisk, unmount } from "./small-disk.js";

const { dir, dataDir, tollgate } = cliOnScratchDir("tollgate-cli-edges-");
const DAY = 86_400_000;
const midnight = (daysAgo: number) => Math.floor(Date.now() / DAY) * DAY - daysAgo * DAY;

/** Records with a reported cost (nano-USD), loaded through `tollgate ingest`. */
async function ingest(name: string, records: Record<string, unknown>[]): Promise<void> {
  const file = join(dir, `${name}.jsonl`);
  writeFileSync(
    file,
    records
      .map((r) =>
        JSON.stringify({
          event_id: uuidv7(),
          provider: "openai",
          model: "gpt-4o-mini",
          input_uncached_tokens: 10,
          output_tokens: 5,
          ...r,
        }),
      )
      .join("\n"),
  );
  const r = await tollgate("ingest", file, "--json");
  expect(r.code, r.err).toBe(0);
}

describe("usage errors exit 2, with the message and no stack", () => {
  it("commander's own: an unknown option or command, a missing option, argument or value", async () => {
    for (const args of [
      ["spend", "--by", "feature", "--bogus"],
      ["spend"],
      ["spend", "--by", "feature", "--from"],
      ["nosuch"],
      ["rollup"],
      ["keys", "create", "--role", "read"],
    ]) {
      const r = await tollgate(...args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err).toMatch(/^error: /);
    }
    const help = await tollgate("spend", "--help");
    expect(help.code).toBe(0);
    expect(help.out).toContain("--by <dimension>");
    const version = await tollgate("--version");
    expect(version.code).toBe(0);
    expect(version.out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("an empty or blank argument names nothing: refused, not sent as a path the server has no route for", async () => {
    mkdirSync(dataDir, { recursive: true });
    for (const [args, says] of [
      [["runs", "status", ""], "run-id must not be empty (usage: tollgate runs status [options] <run-id>)"],
      [["runs", "kill", " "], "run-id must not be blank"],
      [["events", "get", ""], "id must not be empty"],
      [["budgets", "delete", ""], "id must not be empty"],
      // An optional one was read as absent: every budget listed, exit 0.
      [["budgets", "status", ""], "id must not be empty"],
      [["agents", "set", "", "--max-cost", "1"], "agent-type must not be empty"],
    ] as const) {
      const r = await tollgate(...args);
      expect(r.code, `${args.join(" ")}: ${r.out}${r.err}`).toBe(2);
      expect(r.err).toMatch(/^error: /);
      expect(r.err).toContain(says);
    }
  });

  it("an empty --data-dir is refused, not read as the working dir (a store made in it); so are empty files and backends", async () => {
    const cwd = join(dir, "cwd");
    mkdirSync(cwd, { recursive: true });
    const r = await spawnCli(["--data-dir", "", "demo", "--days", "1", "--calls-per-day", "1"], { cwd });
    expect(r.code, r.out + r.err).toBe(2);
    expect(r.err).toBe("error: --data-dir must not be empty: leave it out for the default\n");
    expect(existsSync(join(cwd, "tollgate.duckdb"))).toBe(false);
    for (const flag of ["--pricebook", "--limits", "--redis", "--clickhouse"]) {
      const e = await tollgate(flag, " ", "spend", "--by", "feature");
      expect(e.code, `${flag}: ${e.out}${e.err}`).toBe(2);
      expect(e.err).toContain(`${flag} must not be blank`);
    }
  });

  it("a --clickhouse that is no http(s) URL, or names no database it can make, is said without a stack", async () => {
    for (const [url, says] of [
      ["localhost:8123", "--clickhouse / TOLLGATE_CLICKHOUSE_URL must be an http(s) URL"],
      ["notaurl", "--clickhouse / TOLLGATE_CLICKHOUSE_URL must be an http(s) URL"],
      ["http://127.0.0.1:1/bad-db!", 'invalid ClickHouse database name "bad-db!"'],
    ]) {
      const r = await tollgate("--clickhouse", url!, "spend", "--by", "feature");
      expect(r.code, `${url}: ${r.err}`).toBe(2);
      expect(r.err).toMatch(/^error: /);
      expect(r.err).toContain(says);
      expect(r.err).not.toContain("    at ");
    }
  });

  it("a --redis that ioredis cannot read as an address is said without a stack, as one it cannot reach is", async () => {
    const r = await tollgate("--redis", "redis://ops:s3cret@[bad", "budgets", "status");
    expect(r.code, r.err).toBe(2);
    expect(r.err).toBe(
      "error: --redis / TOLLGATE_REDIS_URL must be a Redis address, redis://[user:password@]host:port or host:port\n",
    );
  });

  it("numbers given to demo and serve", async () => {
    for (const [args, says] of [
      [["demo", "--days", "abc"], "--days must be a whole number from 1 to 3650"],
      [["demo", "--days", "2", "--calls-per-day", "many"], "--calls-per-day must be a whole number"],
      [["demo", "--days", "2", "--seed", "x"], "--seed must be a whole number"],
      [["serve", "--port", "abc"], "invalid port abc"],
      [["serve", "--port", "0", "--demo", "abc"], "--demo must be a whole number from 1 to 3650"],
    ] as const) {
      const r = await tollgate(...args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err).toContain(says);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });

  it("serve --port wins over TOLLGATE_PORT, 4242 (the default's value) too", async () => {
    // A bad TOLLGATE_BACKGROUND_NICE, read after the port, stops the server before it binds anything:
    // reaching its error means the port taken was the flag's, not the bad one in the environment.
    const env = { ...process.env, TOLLGATE_PORT: "abc", TOLLGATE_BACKGROUND_NICE: "99" };
    for (const port of ["4242", "4243"]) {
      const r = await spawnCli(["--data-dir", dataDir, "serve", "--port", port], { env });
      expect(r.code, r.err).toBe(2);
      expect(r.err).toContain("TOLLGATE_BACKGROUND_NICE must be");
    }
    const fromEnv = await spawnCli(["--data-dir", dataDir, "serve"], { env });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.err).toContain("invalid port abc");
  });

  it("ingest of a directory", async () => {
    const r = await tollgate("ingest", dir);
    expect(r.code).toBe(2);
    expect(r.err).toContain("a directory, not a JSONL file");
    expect(r.err).not.toMatch(/EISDIR|\n\s+at /);
  });

  it("ingest of a file it may not read: said before anything is opened, not Node's raw EACCES (exit 1)", async () => {
    const place = mkdtempSync(join(tmpdir(), "tollgate-unreadable-"));
    try {
      chmodSync(place, 0o777); // its data dir made by whoever runs it
      const file = join(place, "calls.jsonl");
      writeFileSync(file, "{}\n", { mode: 0o000 });
      // Root reads any file: run as nobody then.
      const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
      const r = await spawnCli(["--data-dir", join(place, "data"), "ingest", file], asNobody);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toBe(`error: cannot read ${file}: permission denied\n`);
    } finally {
      rmSync(place, { recursive: true, force: true });
    }
  });

  it("budgets set ID --file: a file naming another budget is refused, not saved over that budget", async () => {
    const file = join(dir, "template.yaml");
    writeFileSync(file, 'id: template\nwindow: day\nlimit_usd: "5"\n');
    expect((await tollgate("budgets", "set", "--file", file)).code).toBe(0);
    const other = await tollgate("budgets", "set", "other", "--file", file);
    expect(other.code).toBe(2);
    expect(other.err).toContain('is budget "template", not "other"');
    expect((await tollgate("budgets", "status", "other")).code).toBe(1);
    // A file without an id takes the one given.
    const noId = join(dir, "no-id.yaml");
    writeFileSync(noId, 'window: day\nlimit_usd: "7"\n');
    const named = await tollgate("budgets", "set", "named", "--file", noId, "--json");
    expect(named.code, named.err).toBe(0);
    expect(JSON.parse(named.out)).toMatchObject({ id: "named", budget: { limit_usd: "7" } });
  });
});

describe("budgets set --file", () => {
  it("with a flag of the budget's own (--window, --limit, …): refused, not saved from the file without it", async () => {
    const file = join(dir, "filed.yaml");
    writeFileSync(file, 'id: filed\nwindow: day\nlimit_usd: "2"\n');
    // Another budget, so the data dir is there whatever ran before: "filed" not found is then exit 1.
    expect((await tollgate("budgets", "set", "beside", "--window", "day", "--limit", "1")).code).toBe(0);
    const r = await tollgate(
      "budgets",
      "set",
      "--file",
      file,
      "--window",
      "week",
      "--limit",
      "5",
      "--action",
      "block",
    );
    expect(r.code, r.err).toBe(2);
    expect(r.err).toBe(
      "error: --window, --limit and --action: with --file the budget is the file's; set them in the file, or leave --file out\n",
    );
    expect((await tollgate("budgets", "status", "filed")).code).toBe(1);
    expect((await tollgate("budgets", "delete", "beside")).code).toBe(0);
  });
});

describe("budgets status", () => {
  it("names what each bucket counts: a budget's fixed scope too, not - as for the whole workspace", async () => {
    const set = (id: string, ...scope: string[]) =>
      tollgate(
        "budgets",
        "set",
        id,
        "--window",
        "day",
        "--limit",
        "9",
        ...scope.flatMap((s) => ["--scope", s]),
      );
    for (const r of [await set("whole"), await set("one-feature", "feature=summarize")])
      expect(r.code, r.err).toBe(0);
    await ingest("budget-scope", [
      { ts_start: Date.now() - 1000, feature: "summarize", customer_id: "c-scope" },
    ]);
    const perCustomer = await set("per-customer", "feature=summarize", "customer_id=*");
    expect(perCustomer.code, perCustomer.err).toBe(0);
    const r = await tollgate("budgets", "status");
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^whole\s+-\s+day\s/m);
    expect(r.out).toMatch(/^one-feature\s+feature=summarize\s+day\s/m);
    expect(r.out).toMatch(/^per-customer\s+customer_id=c-scope feature=summarize\s+day\s/m);
    for (const id of ["whole", "one-feature", "per-customer"])
      expect((await tollgate("budgets", "delete", id)).code).toBe(0);
  });

  it("shows USD as the other tables do (cents, thousands grouped; --precision N); --json keeps the exact amounts", async () => {
    const set = await tollgate(
      "budgets",
      "set",
      "readable",
      "--window",
      "day",
      "--limit",
      "1234.5",
      "--scope",
      "feature=readable-money",
    );
    expect(set.code, set.err).toBe(0);
    await ingest("readable-money", [
      { ts_start: Date.now() - 1000, feature: "readable-money", cost_nanousd: 1_234_567 },
    ]);
    const table = await tollgate("budgets", "status", "readable");
    expect(table.code, table.err).toBe(0);
    // spend, reserved, limit, remaining: $0.001234567 and $1234.498765433 before.
    expect(table.out).toMatch(
      /^readable\s+feature=readable-money\s+day\s+ok\s+\$0\.00\s+\$0\.00\s+\$1,234\.50\s+\$1,234\.50\s/m,
    );
    const precise = await tollgate("budgets", "status", "readable", "--precision", "9");
    expect(precise.code, precise.err).toBe(0);
    expect(precise.out).toMatch(
      /\s\$0\.001234567\s+\$0\.000000000\s+\$1,234\.500000000\s+\$1,234\.498765433\s/,
    );
    const json = JSON.parse((await tollgate("budgets", "status", "readable", "--json")).out);
    expect(json.buckets[0]).toMatchObject({
      spend_usd: "0.001234567",
      spend_nanousd: "1234567",
      remaining_usd: "1234.498765433",
    });
    expect((await tollgate("budgets", "delete", "readable")).code).toBe(0);
  });
});

describe("USD a person reads outside the tables, as the tables show it; --json keeps the exact amounts", () => {
  it("budgets set echoes its limit in cents, thousands grouped (--precision N), not as it was typed", async () => {
    const set = (...more: string[]) =>
      tollgate("budgets", "set", "echoed", "--window", "day", "--limit", "1234.5", ...more);
    const saved = await set();
    expect(saved.code, saved.err).toBe(0);
    expect(saved.out).toBe("budget echoed saved: $1,234.50 per day, block\n");
    expect((await set("--precision", "4")).out).toBe("budget echoed saved: $1,234.5000 per day, block\n");
    const json = await set("--json");
    expect(JSON.parse(json.out)).toMatchObject({ id: "echoed", budget: { limit_usd: "1234.5" } });
    expect((await tollgate("budgets", "delete", "echoed")).code).toBe(0);
  });

  it("runs status says a run's cost in cents, thousands grouped (--precision N), not to the nano-USD", async () => {
    await ingest("readable-run", [
      { ts_start: Date.now() - 1000, agent_run_id: "readable-run", cost_nanousd: 1_234_567_890_123 },
    ]);
    const status = await tollgate("runs", "status", "readable-run");
    expect(status.code, status.err).toBe(0);
    expect(status.out).toMatch(/^ {2}cost \$1,234\.57, /m);
    const precise = await tollgate("runs", "status", "readable-run", "--precision", "9");
    expect(precise.out).toMatch(/^ {2}cost \$1,234\.567890123, /m);
    const json = JSON.parse((await tollgate("runs", "status", "readable-run", "--json")).out);
    expect(json.usage).toMatchObject({ cost_usd: "1234.567890123", cost_nanousd: "1234567890123" });
  });
});

describe("a data dir that does not exist", () => {
  it("is not created and read as no spend by a command that only reads (exit 2, naming it); one that writes makes it", async () => {
    const missing = join(dir, "no-such-data-dir");
    for (const args of [
      ["spend", "--by", "feature"],
      ["rollup", "features"],
      ["export", "calls", "-o", join(dir, "never.csv")],
      ["prices", "unpriced"],
      ["budgets", "status"],
      ["keys", "list"],
    ]) {
      const r = await tollgate("--data-dir", missing, ...args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err).toBe(
        `error: no Tollgate data dir at ${missing}: nothing is recorded there and no server runs for it. ` +
          "Name the one `tollgate serve` uses with --data-dir or TOLLGATE_DATA_DIR.\n",
      );
      expect(existsSync(missing)).toBe(false);
    }
    expect(existsSync(join(dir, "never.csv.partial"))).toBe(false);
    const created = await tollgate(
      "--data-dir",
      missing,
      "budgets",
      "set",
      "b",
      "--window",
      "day",
      "--limit",
      "1",
    );
    expect(created.code, created.err).toBe(0);
    expect((await tollgate("--data-dir", missing, "budgets", "status")).code).toBe(0);
  });

  it("is not left made by a read that fails once it opened it (a bad --limits file): the next read says it is not there", async () => {
    const missing = join(dir, "no-data-dir-bad-limits");
    const limits = join(dir, "bad-limits.json");
    writeFileSync(limits, "{not json");
    const failed = await tollgate("--data-dir", missing, "--limits", limits, "spend", "--by", "feature");
    expect(failed.code, failed.err).toBe(2);
    expect(failed.err).toMatch(/^error: cannot read limits file /);
    expect(existsSync(missing)).toBe(false);
    const next = await tollgate("--data-dir", missing, "spend", "--by", "feature");
    expect(next.code, next.err).toBe(2);
    expect(next.err).toMatch(/^error: no Tollgate data dir at /);
  });
});

describe("a data dir that cannot be written: serve, and every command that opens it", () => {
  const told = (data: string, why: string) =>
    `error: data dir ${data} cannot be written: ${why}. Tollgate keeps its store and the calls it could not ` +
    "store yet there: make it writable, or name another with --data-dir or TOLLGATE_DATA_DIR\n";
  /** `serve` on each data dir fails at once with `why`, no stack (exit 1). */
  async function refused(dataDirs: string[], why: string, as: { uid?: number; gid?: number } = {}) {
    for (const data of dataDirs) {
      const r = await spawnCli(["--data-dir", data, "serve", "--port", "0"], { ...as, timeoutMs: 20_000 });
      expect(r.code, r.err).toBe(1);
      expect(r.err).toBe(told(data, why));
    }
  }

  it("one it may not write, to make or made: permission denied", async () => {
    const place = mkdtempSync(join(tmpdir(), "tollgate-unwritable-"));
    try {
      chmodSync(place, 0o555);
      // Root writes anywhere: run as nobody then.
      const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
      await refused([join(place, "data"), place], "permission denied", asNobody);
    } finally {
      rmSync(place, { recursive: true, force: true });
    }
  });

  it("one that is a file (a write check passes it): not a directory, not DuckDB's EEXIST with a stack", async () => {
    const file = join(dir, "data-dir-file");
    writeFileSync(file, "not a data dir\n");
    await refused([file], "it is not a directory");
  });

  // Mounted only when a test of this block runs (a -t filter that skips them skips the hooks too).
  let readOnly: string | null = null;
  beforeAll(async () => {
    readOnly = smallDisk(join(dir, "read-only"), "64m");
    if (readOnly === null) return;
    // A data dir with a budget and calls in it, then the disk made read-only (a snapshot, a full mount).
    const data = join(readOnly, "with-calls");
    expect(
      (await tollgate("--data-dir", data, "budgets", "set", "b", "--window", "day", "--limit", "1")).code,
    ).toBe(0);
    expect((await tollgate("--data-dir", data, "demo", "--days", "1")).code).toBe(0);
    remountReadOnly(readOnly);
  });
  afterAll(() => {
    if (readOnly) unmount(readOnly);
  });
  it("one on a read-only mount, to make or made: not Node's ENOENT nor DuckDB's IO error", async (ctx) => {
    if (readOnly === null) return ctx.skip(); // no mount allowed here
    await refused([join(readOnly, "data"), readOnly], "a read-only file system");
  });

  it("any other command on a read-only data dir, reading or writing, is told so (exit 1), not DuckDB's IO error; a read of one to make is told it is not there (exit 2)", async (ctx) => {
    if (readOnly === null) return ctx.skip();
    const data = join(readOnly, "with-calls");
    const oneEvent = join(dir, "one-event.jsonl");
    const event = {
      event_id: uuidv7(),
      ts_start: new Date().toISOString(),
      provider: "openai",
      api: "openai.chat",
    };
    writeFileSync(
      oneEvent,
      `${JSON.stringify({ ...event, model: "gpt-4o-mini", usage_raw: { prompt_tokens: 10 } })}\n`,
    );
    for (const args of [
      ["spend", "--by", "feature", "--from", "7d"],
      ["budgets", "status"],
      ["keys", "list"],
      ["export", "calls", "--out", join(dir, "ro-export.csv"), "--from", "7d"],
      ["ingest", oneEvent],
      ["demo", "--days", "1"],
    ]) {
      const r = await tollgate("--data-dir", data, ...args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(1);
      expect(r.err).toBe(told(data, "a read-only file system"));
    }
    expect(existsSync(join(dir, "ro-export.csv.partial"))).toBe(false);
    const missing = join(readOnly, "never-made");
    const r = await tollgate("--data-dir", missing, "spend", "--by", "feature");
    expect(r.code, r.err).toBe(2);
    expect(r.err).toBe(
      `error: no Tollgate data dir at ${missing}: nothing is recorded there and no server runs for it. ` +
        "Name the one `tollgate serve` uses with --data-dir or TOLLGATE_DATA_DIR.\n",
    );
  });
});

describe("serve where it cannot listen", () => {
  it("says why and what to do, no stack: a port in use (exit 1), a --host not of this machine (exit 2)", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as { port: number };
    try {
      const r = await tollgate("serve", "--port", String(port));
      expect(r.code).toBe(1);
      expect(r.err).toBe(
        `error: cannot listen on 127.0.0.1:${port}: the port is in use (another server?); pick another with --port or TOLLGATE_PORT\n`,
      );
    } finally {
      taken.close();
    }
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine.
    const absent = await tollgate("serve", "--port", "0", "--host", "192.0.2.1");
    expect(absent.code).toBe(2);
    expect(absent.err).toBe(
      "error: cannot listen on 192.0.2.1:0: --host 192.0.2.1 is not an address of this machine\n",
    );
    const unknown = await tollgate("serve", "--port", "0", "--host", "no-such-host.invalid");
    expect(unknown.code).toBe(2);
    expect(unknown.err).toBe(
      "error: cannot listen on no-such-host.invalid:0: --host no-such-host.invalid could not be resolved\n",
    );
  });
});

describe("exit codes and output that do not depend on --json", () => {
  it("prices lookup / calc of an unpriced model exit 1 with --json too; calc's total is unknown, not $0.00", async () => {
    const lookup = await tollgate("prices", "lookup", "no-such-model-9", "--json");
    expect(lookup.code).toBe(1);
    expect(JSON.parse(lookup.out)).toMatchObject({ priced: false });
    const args = [
      "prices",
      "calc",
      "--provider",
      "openai",
      "--api",
      "openai.chat",
      "--model",
      "no-such-model-9",
    ];
    const usage = ["--usage", JSON.stringify({ prompt_tokens: 10, completion_tokens: 5 })];
    const json = await tollgate(...args, ...usage, "--json");
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out)).toMatchObject({ priced: false });
    const table = await tollgate(...args, ...usage);
    expect(table.code).toBe(1);
    expect(table.out).toContain("UNPRICED");
    expect(table.out).toContain("total unknown");
    expect(table.out).not.toContain("$0.00");
  });
});

describe("a server that does not answer", () => {
  it("is named with what to do (exit 1, no stack), not a TypeError: fetch failed", async () => {
    const dataDir = join(dir, "unreachable");
    mkdirSync(dataDir, { recursive: true });
    // A port that nothing listens on, and a live pid (this test's): a server shutting down, or a pid reused.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    writeFileSync(
      join(dataDir, "server.json"),
      JSON.stringify({ pid: process.pid, url: `http://127.0.0.1:${port}`, token: "tg_root_x", role: "all" }),
    );
    const r = await tollgate("--data-dir", dataDir, "spend", "--by", "feature");
    expect(r.code).toBe(1);
    expect(r.err).toContain(`cannot reach the Tollgate server of ${dataDir} at http://127.0.0.1:${port}`);
    expect(r.err).toContain("server.json");
    expect(r.err).not.toMatch(/TypeError|\n\s+at /);
  });

  it("a server there that refuses the file's token is said to be another's, with what to do", async () => {
    const dataDir = join(dir, "another-server");
    mkdirSync(dataDir, { recursive: true });
    // Another Tollgate on the port: it does not know this data dir's local-admin token.
    const other = createHttpServer((_, res) =>
      res
        .writeHead(401, { "content-type": "application/json" })
        .end(
          '{"error":{"type":"authentication_error","code":"invalid_api_key","message":"this API key is not valid"}}',
        ),
    );
    await new Promise<void>((r) => other.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(other.address() as { port: number }).port}`;
    try {
      writeFileSync(
        join(dataDir, "server.json"),
        JSON.stringify({ pid: process.pid, url, token: "tg_root_x", role: "all" }),
      );
      const r = await tollgate("--data-dir", dataDir, "spend", "--by", "feature");
      expect(r.code).toBe(1);
      expect(r.err).toContain(
        `the server at ${url} refused the local-admin token of ${join(dataDir, "server.json")}`,
      );
      expect(r.err).toContain("delete that file and run the command again");
    } finally {
      other.close();
    }
  });
});

describe("figures", () => {
  it("spend --to alone ends the default 30-day window there (no 400 about a --from never given)", async () => {
    await ingest("old", [{ ts_start: midnight(40) + 3_600_000, feature: "old-spend", cost_nanousd: 1_000 }]);
    const to = new Date(midnight(35)).toISOString();
    const r = await tollgate("spend", "--by", "feature", "--to", to, "--json");
    expect(r.code, r.err).toBe(0);
    const res = JSON.parse(r.out);
    expect(res.to).toBe(midnight(35));
    expect(res.from).toBe(midnight(65));
    expect(res.rows).toEqual([expect.objectContaining({ key: "old-spend", cost_nanousd: "1000" })]);
  });

  it("spend's shares are rounded, not cut off (94.56% is 94.6%)", async () => {
    const at = midnight(20) + 3_600_000;
    await ingest("shares", [
      { ts_start: at, feature: "share-a", cost_nanousd: 9_456 },
      { ts_start: at, feature: "share-b", cost_nanousd: 544 },
    ]);
    const from = new Date(midnight(21)).toISOString();
    const to = new Date(midnight(19)).toISOString();
    const r = await tollgate("spend", "--by", "feature", "--from", from, "--to", to);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^share-a\s+1\s+0\.00\s+94\.6%/m);
    expect(r.out).toMatch(/^share-b\s+1\s+0\.00\s+5\.4%/m);
  });

  it("shares and changes are one rounding in every table, half-up on integers (3 of 2,000 is 0.2%)", async () => {
    // As floats, 0.0015 * 100 is 0.1499…: the rollup tables said 0.1% where spend said 0.2%.
    const iso = (daysAgo: number) => new Date(midnight(daysAgo)).toISOString();
    await ingest("one-rounding", [
      { ts_start: midnight(30) + 3_600_000, feature: "share-rule", customer_id: "share-x", cost_nanousd: 3 },
      {
        ts_start: midnight(30) + 3_600_000,
        feature: "share-rule",
        customer_id: "share-y",
        cost_nanousd: 1_997,
      },
      { ts_start: midnight(32) + 3_600_000, feature: "change-rule", cost_nanousd: 2_000 },
      { ts_start: midnight(30) + 3_600_000, feature: "change-rule", cost_nanousd: 2_003 },
    ]);
    const window = ["--from", iso(31), "--to", iso(29)];
    const spend = await tollgate("spend", "--by", "customer", "--feature", "share-rule", ...window);
    expect(spend.code, spend.err).toBe(0);
    expect(spend.out).toMatch(/^share-x\s+1\s+0\.00\s+0\.2%/m);
    const customers = await tollgate("rollup", "customers", "--feature", "share-rule", ...window);
    expect(customers.code, customers.err).toBe(0);
    expect(customers.out).toMatch(/^share-x\s+\$0\.00\s+0\.2%/m);
    const features = await tollgate("rollup", "features", "--feature", "change-rule", ...window);
    expect(features.code, features.err).toBe(0);
    expect(features.out).toMatch(
      /^change-rule\s+1\s+\$0\.00\s+\$0\.000002\s+\$0\.000002\s+\+0\.2%\s+\+0\.2%$/m,
    );
  });

  it("--precision: USD in the tables to as many decimals as asked (DESIGN.md), half-up; 0 to 9", async () => {
    const at = midnight(27) + 3_600_000;
    await ingest("precision", [
      { ts_start: at, feature: "precise", user_id: "precise-u", cost_nanousd: 1_234_567 },
      { ts_start: at, feature: "precise", user_id: "precise-v", cost_nanousd: 1_000 },
    ]);
    const window = [
      "--from",
      new Date(midnight(28)).toISOString(),
      "--to",
      new Date(midnight(26)).toISOString(),
    ];
    const only = ["--feature", "precise", ...window];
    const spend = await tollgate("spend", "--by", "user", ...only, "--precision", "9");
    expect(spend.code, spend.err).toBe(0);
    expect(spend.out).toMatch(/^precise-u\s+1\s+0\.001234567\s/m);
    expect(spend.out).toMatch(/^TOTAL\s+2\s+0\.001235567\s/m);
    // Every USD figure of a rollup, per-request ones included (their own default is 6 decimals).
    const features = await tollgate("rollup", "features", ...only, "--precision", "4");
    expect(features.code, features.err).toBe(0);
    expect(features.out).toMatch(/^precise\s+2\s+\$0\.0012\s+\$0\.0006\s/m);
    const explain = await tollgate("explain", ...only, "--precision", "7");
    expect(explain.code, explain.err).toBe(0);
    expect(explain.out).toMatch(/^precise\s+\$0\.0000000\s+\$0\.0012356\s/m);
    const forecast = await tollgate("forecast", "--feature", "precise", "--precision", "0");
    expect(forecast.code, forecast.err).toBe(0);
    expect(forecast.out).toMatch(/: \$0 so far/);
    for (const bad of ["10", "-1", "2.5", "x"]) {
      const r = await tollgate("spend", "--by", "user", ...only, "--precision", bad);
      expect(r.code, bad).toBe(2);
      expect(r.err).toContain("--precision must be a whole number from 0 to 9");
    }
  });

  it("--precision's help says the command's own default: per-call figures only where a command has them (rollup)", async () => {
    const help = async (...command: string[]) => {
      const r = await tollgate(...command, "--help");
      expect(r.code, r.err).toBe(0);
      return r.out.replace(/\s+/g, " "); // wrapped to the terminal's width
    };
    const cents = "--precision <digits> decimals of USD shown, 0 to 9, rounded half-up (default: cents)";
    for (const command of [
      ["spend"],
      ["explain"],
      ["forecast"],
      ["budgets", "status"],
      ["budgets", "set"],
      ["runs", "status"],
    ])
      expect(await help(...command), command.join(" ")).toContain(cents);
    expect(await help("rollup")).toContain("(default: cents; per-call and per-request figures 4 or 6)");
  });

  it("explain's help says the windows it compares by default: this month so far against the same span of the month before", async () => {
    const help = (await tollgate("explain", "--help")).out.replace(/\s+/g, " ");
    expect(help).toContain(
      "--from <time> start: ISO date/time or a span back from now (7d, 24h); default: the start of --to's UTC month (this month so far)",
    );
    expect(help).toContain(
      "--vs-from <time> start of the period compared with (default: the same span of the month before; with --from, the period right before)",
    );
    // What the server does without a window: the month so far, and the month before it.
    mkdirSync(dataDir, { recursive: true });
    const r = await tollgate("explain", "--json");
    expect(r.code, r.err).toBe(0);
    const { current, previous } = JSON.parse(r.out);
    const monthStart = (t: string) => `${t.slice(0, 7)}-01T00:00:00.000Z`;
    expect(current.from).toBe(monthStart(current.to));
    expect(previous.from).toBe(monthStart(previous.to));
    expect(previous.from < current.from).toBe(true);
  });

  it('tables show "" (a tool\'s provider and model, which name none) as (none), as they show none; --json keeps ""', async () => {
    const at = midnight(25) + 3_600_000;
    const none = {
      provider: undefined,
      model: undefined,
      input_uncached_tokens: undefined,
      output_tokens: undefined,
    };
    await ingest("no-provider", [
      { ts_start: at, feature: "blank-key", cost_nanousd: 1_000 },
      { ts_start: at, feature: "blank-key", kind: "tool", ...none, cost_nanousd: 3_000 },
    ]);
    const window = [
      "--feature",
      "blank-key",
      "--from",
      new Date(at - DAY).toISOString(),
      "--to",
      new Date(at + DAY).toISOString(),
    ];
    const spend = await tollgate("spend", "--by", "provider", ...window);
    expect(spend.code, spend.err).toBe(0);
    expect(spend.out).toMatch(/^\(none\)\s+1\s+0\.00\s+75\.0%/m);
    expect(spend.out).toMatch(/^openai\s+1\s+0\.00\s+25\.0%/m);
    const json = JSON.parse((await tollgate("spend", "--by", "provider", ...window, "--json")).out);
    expect(json.rows.map((r: { key: string | null }) => r.key)).toEqual(["", "openai"]);
    // The tool's cost is spend in the rollups too, under no model.
    const outcomes = await tollgate("rollup", "outcomes", "--by", "model", ...window);
    expect(outcomes.code, outcomes.err).toBe(0);
    // No requests: no success rate, as no cost per success (0.0% would say every request failed).
    expect(outcomes.out).toMatch(/^\(none\)\s+0\s+0\s+-\s+\$0\.00\s+-$/m);
  });

  it("explain's tables write a fall as -$1.00 (as its narrative does), right-aligned like the rest", async () => {
    // Before: feature fall-a and fall-b $1 each; after: fall-a $3, fall-b nothing.
    const before = midnight(14) + 3_600_000;
    const after = midnight(12) + 3_600_000;
    await ingest("variance", [
      { ts_start: before, feature: "fall-a", customer_id: "var", cost_nanousd: 1_000_000_000 },
      { ts_start: before, feature: "fall-b", customer_id: "var", cost_nanousd: 1_000_000_000 },
      { ts_start: after, feature: "fall-a", customer_id: "var", cost_nanousd: 3_000_000_000 },
    ]);
    const iso = (daysAgo: number) => new Date(midnight(daysAgo)).toISOString();
    const r = await tollgate(
      "explain",
      "--customer",
      "var",
      "--from",
      iso(13),
      "--to",
      iso(11),
      "--vs-from",
      iso(15),
      "--vs-to",
      iso(13),
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("fall-b -$1.00 (volume -$0.50, mix -$0.50"); // the narrative
    expect(r.out).not.toContain("$-");
    const lines = r.out.split("\n");
    const header = lines.find((l) => /^feature\s+before/.test(l))!;
    expect(lines.find((l) => /^fall-b\s/.test(l))).toMatch(
      /^fall-b\s+\$1\.00\s+\$0\.00\s+-\$1\.00\s+-\$0\.50\s+-\$0\.50\s/,
    );
    // fall-a's mix, $0.50, ends where the column's header ends: a column holding -$0.50 is numeric too.
    const mixEnd = header.indexOf("mix") + "mix".length;
    expect(lines.find((l) => /^fall-a\s/.test(l))!.slice(mixEnd - 5, mixEnd)).toBe("$0.50");
  });

  it("a parquet export keeps each column's type: text that reads as a number stays text", async () => {
    const at = midnight(8) + 3_600_000;
    await ingest("types", [
      { ts_start: at, feature: "typed", prompt_version: "1.10", customer_id: "42", user_id: "007" },
      { ts_start: at + 1, feature: "typed", prompt_version: "2.0", customer_id: "43", user_id: "008" },
    ]);
    const out = join(dir, "typed.parquet");
    const from = new Date(midnight(9)).toISOString();
    const to = new Date(midnight(7)).toISOString();
    const r = await tollgate(
      "export",
      "calls",
      "--feature",
      "typed",
      "--from",
      from,
      "--to",
      to,
      "--format",
      "parquet",
      "-o",
      out,
    );
    expect(r.code, r.err).toBe(0);
    const { DuckDBInstance } = await import("@duckdb/node-api");
    const db = await DuckDBInstance.create(":memory:");
    const conn = await db.connect();
    const rows = (
      await conn.runAndReadAll(
        `SELECT prompt_version, customer_id, user_id, typeof(prompt_version), typeof(customer_id),
                typeof(ttft_ms), typeof(cost_nanousd), typeof(priced)
         FROM '${out}' ORDER BY prompt_version`,
      )
    ).getRowsJS();
    conn.closeSync();
    expect(rows).toEqual([
      ["1.10", "42", "007", "VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "BOOLEAN"],
      ["2.0", "43", "008", "VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "BOOLEAN"],
    ]);
  });
});

describe("spend and export calls pick a data_mode and deployment, as the rollups do", () => {
  it("--data-mode and --deployment (other than prod) filter exactly; a value the server refuses is a usage error", async () => {
    const ts = Date.now() - 3_600_000;
    await ingest("modes", [
      { ts_start: ts, feature: "modes", data_mode: "real", deployment: "prod", cost_nanousd: "1000000" },
      { ts_start: ts, feature: "modes", data_mode: "test", deployment: "staging", cost_nanousd: "20000000" },
    ]);
    const spend = async (...flags: string[]) => {
      const r = await tollgate("spend", "--by", "feature", "--feature", "modes", "--json", ...flags);
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out).rows.map((x: { cost_usd: string }) => x.cost_usd);
    };
    expect(await spend()).toEqual(["0.021"]);
    expect(await spend("--data-mode", "real")).toEqual(["0.001"]);
    expect(await spend("--deployment", "staging")).toEqual(["0.02"]);
    const bad = await tollgate("spend", "--by", "feature", "--data-mode", "bogus");
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("data_mode");
    const out = join(dir, "modes.json");
    const r = await tollgate(
      "export",
      "calls",
      "-o",
      out,
      "--format",
      "json",
      "--feature",
      "modes",
      "--data-mode",
      "test",
      "--json",
    );
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).rows).toBe(1);
  });

  it("--deployment all and --data-mode all are every value, as in the rollups, not one named all", async () => {
    const ts = Date.now() - 3_600_000;
    await ingest("every", [
      { ts_start: ts, feature: "every", data_mode: "real", deployment: "prod", cost_nanousd: "1000000" },
      { ts_start: ts, feature: "every", data_mode: "test", deployment: "staging", cost_nanousd: "20000000" },
      { ts_start: ts, feature: "every", data_mode: "demo", cost_nanousd: "300000000" },
    ]);
    const all = ["--deployment", "all", "--data-mode", "all"];
    const spend = await tollgate("spend", "--by", "deployment", "--feature", "every", "--json", ...all);
    expect(spend.code, spend.err).toBe(0);
    expect(JSON.parse(spend.out).rows.map((x: { key: string | null }) => x.key)).toEqual([
      null,
      "staging",
      "prod",
    ]);
    const table = await tollgate("spend", "--by", "feature", "--feature", "every", "--deployment", "all");
    expect(table.out).toMatch(/^every\s+3\s+0\.32\s/m);
    const out = join(dir, "every.json");
    const exported = async (...flags: string[]) => {
      const r = await tollgate(
        "export",
        "calls",
        "-o",
        out,
        "--format",
        "json",
        "--feature",
        "every",
        "--json",
        ...flags,
      );
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out).rows;
    };
    expect(await exported("--deployment", "all")).toBe(3);
    expect(await exported(...all)).toBe(3);
    const rollup = await tollgate("rollup", "features", "--feature", "every", "--json", ...all);
    expect(rollup.code, rollup.err).toBe(0);
    expect(JSON.parse(rollup.out).features[0]).toMatchObject({ requests: 3 });
  });

  it("--deployment prod counts calls without a deployment, so spend, export calls and the rollups agree", async () => {
    const ts = Date.now() - 3_600_000;
    await ingest("unset", [
      { ts_start: ts, feature: "unset", deployment: "prod", cost_nanousd: "1000000" },
      { ts_start: ts, feature: "unset", deployment: "staging", cost_nanousd: "20000000" },
      { ts_start: ts, feature: "unset", cost_nanousd: "300000000" },
    ]);
    const spend = async (deployment: string) => {
      const r = await tollgate(
        "spend",
        "--by",
        "feature",
        "--feature",
        "unset",
        "--deployment",
        deployment,
        "--json",
      );
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out).rows.map((x: { cost_nanousd: string }) => x.cost_nanousd);
    };
    const rollup = await tollgate(
      "rollup",
      "features",
      "--feature",
      "unset",
      "--deployment",
      "prod",
      "--json",
    );
    expect(rollup.code, rollup.err).toBe(0);
    expect(JSON.parse(rollup.out).features.map((f: { cost: { nanousd: string } }) => f.cost.nanousd)).toEqual(
      ["301000000"],
    );
    expect(await spend("prod")).toEqual(["301000000"]);
    expect(await spend("staging")).toEqual(["20000000"]);
    const out = join(dir, "unset.json");
    const exported = async (deployment: string) => {
      const r = await tollgate(
        "export",
        "calls",
        "-o",
        out,
        "--format",
        "json",
        "--feature",
        "unset",
        "--deployment",
        deployment,
        "--json",
      );
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out).rows;
    };
    expect(await exported("prod")).toBe(2);
    expect(await exported("staging")).toBe(1);
  });
});

describe("lists with nothing in them", () => {
  it("say so and how to make one, rather than print headers alone", async () => {
    const { dataDir: freshDir, tollgate: fresh } = cliOnScratchDir("tollgate-cli-empty-lists-");
    mkdirSync(freshDir, { recursive: true });
    for (const [args, says] of [
      [["agents", "list"], "no agent types with ceilings (set some with `tollgate agents set TYPE`)"],
      [["keys", "list"], "no keys (create one with `tollgate keys create`)"],
    ] as const) {
      const r = await fresh(...args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(0);
      expect(r.out.trim()).toBe(says);
    }
  });
});

describe("a refused flag is named as the flag", () => {
  it("budgets set, agents set and keys create say which flag to fix, exit 2", async () => {
    for (const [args, says] of [
      [
        ["budgets", "set", "b-flags", "--window", "day", "--limit", "1", "--warn-at", "0.5,abc"],
        'error: --warn-at takes numbers; "abc" is not one',
      ],
      // Empty (a script's unset variable): refused, not saved as a budget that never warns.
      [
        ["budgets", "set", "b-flags", "--window", "day", "--limit", "1", "--warn-at", ""],
        'error: --warn-at takes numbers; "" is not one',
      ],
      // Not a number: named as given, not as the null it became in JSON.
      [
        ["budgets", "set", "b-flags", "--window", "day", "--limit", "1", "--action", "throttle"].concat([
          "--throttle-rpm",
          "lots",
        ]),
        'error: --throttle-rpm takes numbers; "lots" is not one',
      ],
      // One field scoped twice: refused, not narrowed to the last value given without a word.
      [
        ["budgets", "set", "b-flags", "--window", "day", "--limit", "1"].concat([
          "--scope",
          "customer_id=acme",
          "--scope",
          "customer_id=*",
        ]),
        'error: --scope gives customer_id twice ("acme" and "*"): a budget scopes a field to one value, or "*" for each',
      ],
      [
        ["budgets", "set", "b-flags", "--window", "fortnight", "--limit", "1"],
        "budgets set failed (400): --window: window: must be",
      ],
      [
        ["budgets", "set", "b-flags", "--window", "day", "--limit", "lots"],
        "budgets set failed (400): --limit: ",
      ],
      [
        ["agents", "set", "bot-flags", "--max-llm-calls", "2.5"],
        "agents set failed (400): --max-llm-calls: max_llm_calls: ",
      ],
      [
        ["agents", "set", "bot-flags", "--max-depth", "deep"],
        'error: --max-depth takes numbers; "deep" is not one',
      ],
      // A key's attribution is refused by its field's path (defaults.customer_id): named by its own flag.
      [
        ["keys", "create", "-w", "default", "--role", "gateway", "--customer", ""],
        "keys create failed (400): --customer: defaults.customer_id: ",
      ],
      [
        ["keys", "create", "-w", "default", "--role", "gateway", "--label", "x".repeat(201)],
        "keys create failed (400): --label: label: ",
      ],
      // Attribution on a key whose calls are not the gateway's: the flags that set it are named.
      [
        ["keys", "create", "-w", "default", "--role", "read", "--feature", "chat"],
        "keys create failed (400): --customer, --feature, --user, --deployment, --prompt-version or --agent-type: defaults are attribution for gateway calls, which a read key cannot make",
      ],
    ] as const) {
      const r = await tollgate(...args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err).toContain(says);
    }
  });
});

describe("every command that prints data has --json (DESIGN.md)", () => {
  it("agents set prints the stored ceilings, budgets delete what it deleted", async () => {
    const ceilings = ["--max-cost", "0.50", "--max-llm-calls", "40"];
    const set = await tollgate("agents", "set", "bot-json", ...ceilings, "--json");
    expect(set.code, set.err).toBe(0);
    expect(JSON.parse(set.out)).toMatchObject({
      id: "bot-json",
      agent: { max_cost_usd: "0.50", max_llm_calls: 40 },
      source: "api",
    });
    expect((await tollgate("budgets", "set", "b-json", "--window", "day", "--limit", "1")).code).toBe(0);
    const deleted = await tollgate("budgets", "delete", "b-json", "--json");
    expect(deleted.code, deleted.err).toBe(0);
    expect(JSON.parse(deleted.out)).toEqual({ deleted: "b-json", kind: "budget" });
  });
});

describe("a refused query value is named as its flag", () => {
  it("spend, rollup, explain, prices unpriced, export and purge say which flag to fix, exit 2", async () => {
    mkdirSync(dataDir, { recursive: true }); // a data dir to read (one that does not exist is refused first)
    for (const [args, says] of [
      [
        ["spend", "--by", "feature", "--from", "7d", "--to", "14d"],
        "spend failed (400): --to: to must be after",
      ],
      [["rollup", "features", "--data-mode", "live"], "rollup features failed (400): --data-mode: "],
      [["rollup", "user-day", "--top", "0"], "rollup user-day failed (400): --top: "],
      // A flag only another rollup reads would be ignored: the table not the one asked for.
      [
        ["rollup", "features", "--top", "3"],
        "error: --top is for rollup user-day only; rollup features takes no --top",
      ],
      [
        ["rollup", "customers", "--by", "model"],
        "error: --by is for rollup outcomes only; rollup customers takes no --by",
      ],
      [
        ["export", "rollup", "features", "-o", join(dir, "r.csv"), "--by", "model"],
        "error: --by is for rollup outcomes only",
      ],
      [["explain", "--vs-from", "7d", "--vs-to", "14d"], "explain failed (400): --vs-to: "],
      [["prices", "unpriced", "--since", "lately"], "prices unpriced failed (400): --since: "],
      [["export", "calls", "-o", join(dir, "q.csv"), "--from", "then"], "export failed (400): --from: "],
      [["export", "rollup", "outcomes", "-o", join(dir, "q.csv"), "--by", "user"], "failed (400): --by: "],
      [["purge", "--raw-days", "99999999"], "purge failed (400): --raw-days: "],
      [["purge", "--summary-months", "99999"], "purge failed (400): --summary-months: "],
    ] as const) {
      const r = await tollgate(...args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err).toContain(says);
    }
  });

  it("an empty filter is refused as the rollups refuse it, not dropped: spend would answer for everything", async () => {
    mkdirSync(dataDir, { recursive: true });
    for (const [flag, field] of [
      ["--customer", "customer_id"],
      ["--feature", "feature"],
      ["--data-mode", "data_mode"],
      ["--deployment", "deployment"],
    ] as const) {
      const r = await tollgate("spend", "--by", "feature", flag, "");
      expect(r.code, `${flag} "": ${r.out}${r.err}`).toBe(2);
      expect(r.err).toContain(`spend failed (400): ${flag}: ${field} must not be empty`);
    }
  });
});
