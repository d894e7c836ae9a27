import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { uuidv7 } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { cliOnScratchDir, spawnCli } from "./cli-run.js";

const FIXTURES = new URL("../../../../shared/fixtures/", import.meta.url).pathname;
const { dir, dataDir, tollgate } = cliOnScratchDir("tollgate-cli-");

/** A `prices calc --json` answer's categories added up exactly, as its total is written: a decimal string. */
const categorySum = (byCategory: Record<string, string>) =>
  Object.values(byCategory)
    .reduce((a, v) => a + BigInt(v), 0n)
    .toString();

describe("tollgate CLI", () => {
  it("serve refuses a bad gateway setting as a usage error (exit 2, the message, no stack), before opening anything", async () => {
    for (const [name, value, says] of [
      ["TOLLGATE_UPSTREAM_CONNECTIONS", "0", "TOLLGATE_UPSTREAM_CONNECTIONS must be at least 1, got 0"],
      ["TOLLGATE_UPSTREAM_TIMEOUT_MS", "soon", "TOLLGATE_UPSTREAM_TIMEOUT_MS must be a non-negative integer"],
      ["TOLLGATE_UPSTREAM_TIMEOUT_MS", "0", "TOLLGATE_UPSTREAM_TIMEOUT_MS must be at least 1, got 0"],
      ["TOLLGATE_GATEWAY_RETRIES", "11", "TOLLGATE_GATEWAY_RETRIES must be at most 10, got 11"],
      [
        "TOLLGATE_BACKGROUND_FOLLOW_MS",
        "soon",
        "TOLLGATE_BACKGROUND_FOLLOW_MS must be a non-negative integer",
      ],
      ["TOLLGATE_RUN_HOLD_WAIT_MS", "soon", "TOLLGATE_RUN_HOLD_WAIT_MS must be a non-negative integer"],
      [
        "TOLLGATE_RUN_HOLD_WAIT_MS",
        "3600001",
        "TOLLGATE_RUN_HOLD_WAIT_MS must be at most 3600000, got 3600001",
      ],
      ["HTTPS_PROXY", "not a url", "HTTPS_PROXY"],
      [
        "TOLLGATE_DUCKDB_MEMORY_LIMIT",
        "lots",
        'TOLLGATE_DUCKDB_MEMORY_LIMIT must look like 256MB or 1GB, got "lots"',
      ],
      [
        "TOLLGATE_DUCKDB_MEMORY_LIMIT",
        "64MB",
        "TOLLGATE_DUCKDB_MEMORY_LIMIT must be at least 128MB (got 64MB)",
      ],
      ["TOLLGATE_DUCKDB_BLOCK_SIZE", "8192", "TOLLGATE_DUCKDB_BLOCK_SIZE must be a power of two from 16384"],
      ["TOLLGATE_CHECKPOINT_WAL_MB", "8MB", "TOLLGATE_CHECKPOINT_WAL_MB must be a whole number"],
      [
        "TOLLGATE_POLICY_REFRESH_MS",
        "50",
        "TOLLGATE_POLICY_REFRESH_MS must be a whole number of ms, at least 100",
      ],
      [
        "TOLLGATE_BUDGET_SEED_PASSES_MS",
        "300,30",
        "TOLLGATE_BUDGET_SEED_PASSES_MS must be ascending whole numbers",
      ],
      [
        "TOLLGATE_RAW_RETENTION_DAYS",
        "30d",
        "TOLLGATE_RAW_RETENTION_DAYS must be a whole number of at least 1",
      ],
      [
        "TOLLGATE_SUMMARY_RETENTION_MONTHS",
        "0",
        "TOLLGATE_SUMMARY_RETENTION_MONTHS must be a whole number of at least 1",
      ],
    ] as const) {
      const dataDirOfBad = join(dir, `bad-${name}`);
      const res = await spawnCli(["--data-dir", dataDirOfBad, "serve", "--port", "0"], {
        env: { ...process.env, [name]: value },
      });
      expect(res.code, `${name}=${value}: ${res.err}`).toBe(2);
      expect(res.err).toContain(says);
      expect(res.err).not.toMatch(/\n\s+at /); // no stack trace
      expect(existsSync(dataDirOfBad)).toBe(false);
    }
  });

  it("serve --help names every setting serve reads from the environment, the scheduled jobs' and ClickHouse's too", async () => {
    const { code, out } = await tollgate("serve", "--help");
    expect(code).toBe(0);
    for (const name of [
      "TOLLGATE_RAW_RETENTION_DAYS",
      "TOLLGATE_SUMMARY_RETENTION_MONTHS",
      "TOLLGATE_CLICKHOUSE_CLUSTER",
      "TOLLGATE_CLICKHOUSE_NODES",
    ])
      expect(out).toContain(name);
    // --demo without a number loads 90 days; commander's "(default: false)" said otherwise.
    expect(out).not.toContain("(default: false)");
    expect(out).toMatch(/--demo \[days\][\s\S]*default 90/);
  });

  it("a missing or invalid --limits / --pricebook file is a usage error (exit 2, the message, no stack)", async () => {
    const badLimits = join(dir, "bad-limits.yaml");
    writeFileSync(badLimits, "budgets:\n  - { id: no-window }\n");
    const badBook = join(dir, "bad-book.yaml");
    writeFileSync(badBook, "models: 5\n");
    for (const [args, says] of [
      [["--limits", badLimits, "budgets", "status"], "budgets[0]: window"],
      [["--limits", join(dir, "no-such.yaml"), "runs", "kill", "r1"], "cannot read limits file"],
      [["--pricebook", badBook, "keys", "list"], "invalid price book"],
      [["--limits", badLimits, "serve", "--port", "0"], "budgets[0]: window"],
    ] as const) {
      const r = await tollgate(...args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err).toContain(says);
      expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
    }
  });

  it("a ClickHouse or Redis that cannot be reached is named with why (exit 1, no stack, no password)", async () => {
    for (const [args, says] of [
      [
        ["--redis", "redis://ops:s3cret@127.0.0.1:1", "budgets", "status"],
        "cannot reach Redis at 127.0.0.1:1",
      ],
      [["--redis", "redis://127.0.0.1:1", "serve", "--port", "0"], "cannot reach Redis at 127.0.0.1:1"],
      [["--clickhouse", "http://127.0.0.1:1", "spend", "--by", "feature"], "ClickHouse at 127.0.0.1:1"],
    ] as const) {
      const r = await tollgate(...args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(1);
      expect(r.err).toContain(says);
      expect(r.err).toContain("ECONNREFUSED"); // why (ioredis alone said "Connection is closed.")
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(r.err).not.toContain("s3cret");
    }
  });

  it("prices calc prints normalized usage and exact cost as JSON (Anthropic vector)", async () => {
    const vectors = JSON.parse(readFileSync(join(FIXTURES, "conformance/cost-vectors.json"), "utf8"));
    const v = vectors.find((x: { model: string }) => x.model === "claude-sonnet-4-5-20250929");
    const r = await tollgate(
      "prices",
      "calc",
      "--provider",
      "anthropic",
      "--api",
      "anthropic.messages",
      "--model",
      v.model,
      "--usage",
      JSON.stringify(v.usage_raw),
      "--at",
      v.timestamp,
      "--json",
    );
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out);
    expect(out.priced).toBe(true);
    expect(out.price_ref).toBe("genai-prices@0.1.8:anthropic:claude-sonnet-4-5");
    expect(out.cost.total_nanousd).toMatch(/^\d+$/);
    expect(out.cost.total_usd).toBe(String(v.expected.total_cost_usd));
    expect(out.usage.cache_read_tokens).toBe(v.expected.cached_read_tokens);
    expect(categorySum(out.cost.by_category)).toBe(out.cost.total_nanousd);
  });

  it("prices calc --json writes nano-USD as exact strings, past 2^53 too (as every JSON answer writes money)", async () => {
    // 200,000,000,000,001 cached tokens at $0.075 per million: 15,000,000,000,000,075 nano-USD, odd and
    // past 2^53, which a JSON number cannot hold (it read 15000000000000076).
    const usage = {
      prompt_tokens: 200_000_000_000_001,
      completion_tokens: 0,
      prompt_tokens_details: { cached_tokens: 200_000_000_000_001 },
    };
    const args = ["prices", "calc", "--provider", "openai", "--api", "openai.chat", "--model", "gpt-4o-mini"];
    const calc = (...more: string[]) =>
      tollgate(...args, "--usage", JSON.stringify(usage), "--at", "2026-09-01T12:00:00Z", ...more);
    const r = await calc("--json");
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out);
    expect(out.cost.total_nanousd).toBe("15000000000000075");
    expect(out.cost.total_usd).toBe("15000000.000000075");
    expect(out.cost.by_category).toMatchObject({ cache_read: "15000000000000075", input_uncached: "0" });
    expect(categorySum(out.cost.by_category)).toBe(out.cost.total_nanousd);
    const table = await calc();
    expect(table.code, table.err).toBe(0);
    expect(table.out).toMatch(/^cache_read\s+15,000,000,000,000,075$/m);
  });

  it("prices calc --web-searches: a Responses call's searches (outside its usage object) are priced per call", async () => {
    const vectors = JSON.parse(readFileSync(join(FIXTURES, "conformance/cost-vectors.json"), "utf8"));
    const v = vectors.find((x: { model: string }) => x.model === "gpt-5.2-2025-12-11"); // ran one web search
    const args = ["--provider", "openai", "--api", "openai.responses", "--model", v.model];
    const calc = (...more: string[]) =>
      tollgate(
        "prices",
        "calc",
        ...args,
        "--usage",
        JSON.stringify(v.usage_raw),
        "--at",
        v.timestamp,
        ...more,
      );
    const r = await calc("--web-searches", "1", "--json");
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out);
    expect(out.usage.web_search_requests).toBe(1);
    expect(out.cost.by_category.tool_calls).toBe("10000000"); // $10 per thousand
    expect(v.expected.total_cost_usd).toBe(0.0155155); // the vector's tokens alone
    expect(out.cost.total_usd).toBe("0.0255155");
    const bad = await calc("--web-searches", "-1");
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--web-searches must be a whole number");
  });

  it("prices calc --service-tier prices the tier the call was served on, as its record is (flex: the batch rate)", async () => {
    const usage = JSON.stringify({ prompt_tokens: 1_000_000, completion_tokens: 1_000_000 });
    const calc = async (...more: string[]) => {
      const r = await tollgate(
        "prices",
        "calc",
        ...["--provider", "openai", "--api", "openai.chat", "--model", "gpt-5-mini", "--usage", usage],
        ...["--at", "2026-09-01T12:00:00Z", "--json", ...more],
      );
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out);
    };
    const standard = await calc();
    const flex = await calc("--service-tier", "flex"); // was priced at the standard rate: no way to say the tier
    expect(flex.price_ref).toBe(`${standard.price_ref};flex=0.5`);
    expect(BigInt(flex.cost.total_nanousd) * 2n).toBe(BigInt(standard.cost.total_nanousd));
  });

  it("prices calc prices how the usage says Anthropic served the call (US-only, fast mode), as a record of it is", async () => {
    // The usage object of a claude-opus-4-6 reply served in the US in fast mode: 1.1x and 6x its rates.
    const usage = { input_tokens: 1_000_000, output_tokens: 100_000, inference_geo: "us", speed: "fast" };
    const r = await tollgate(
      "prices",
      "calc",
      "--provider",
      "anthropic",
      "--api",
      "anthropic.messages",
      "--model",
      "claude-opus-4-6",
      "--usage",
      JSON.stringify(usage),
      "--at",
      "2026-09-01T12:00:00Z",
      "--json",
    );
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out);
    expect(out.price_ref).toMatch(/;us-only=1\.1;fast=6$/);
    // $5 in, $25 out per million: $7.50 at standard rates, x1.1 x6.
    expect(out.cost.total_nanousd).toBe("49500000000");
    expect(categorySum(out.cost.by_category)).toBe(out.cost.total_nanousd);
  });

  it("prices calc rejects bad usage JSON and unknown apis with exit code 2", async () => {
    expect(
      (
        await tollgate(
          "prices",
          "calc",
          "--provider",
          "openai",
          "--api",
          "openai.chat",
          "--model",
          "gpt-4o",
          "--usage",
          "{oops",
        )
      ).code,
    ).toBe(2);
    const r = await tollgate(
      "prices",
      "calc",
      "--provider",
      "openai",
      "--api",
      "nope",
      "--model",
      "gpt-4o",
      "--usage",
      "{}",
    );
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--api must be one of/);
  });

  it("prices lookup shows rates and their source; unknown models fail clearly", async () => {
    const r = await tollgate("prices", "lookup", "gpt-4o", "--json");
    expect(JSON.parse(r.out)).toMatchObject({ priced: true, price_ref: "genai-prices@0.1.8:openai:gpt-4o" });
    const miss = await tollgate("prices", "lookup", "no-such-model-9");
    expect(miss.code).toBe(1);
    expect(miss.err).toMatch(/no price for/);
  });

  it("a time out of range or out of order is refused naming the flag", async () => {
    mkdirSync(dataDir, { recursive: true }); // a data dir to read (one that does not exist is refused first)
    for (const at of ["999999999d", "9999-12-31", "soon"]) {
      const r = await tollgate("prices", "lookup", "gpt-4o", "--at", at);
      expect(r.code, at).toBe(2);
      expect(r.err).toMatch(/^error: --at must be /);
    }
    const far = await tollgate("spend", "--by", "feature", "--from", "999999999d");
    expect(far.code).toBe(2); // refused by the server (400): still a usage error
    expect(far.err).toContain("from must be between 1970-01-01 and 2100-01-01");
    const backwards = await tollgate("spend", "--by", "feature", "--from", "now", "--to", "7d");
    expect(backwards.code).toBe(2);
    expect(backwards.err).toContain("to must be after from");
  });

  it("demo then spend --by feature prints a table; re-running demo is idempotent", async () => {
    const d = await tollgate("demo", "--days", "14", "--calls-per-day", "200", "--json");
    expect(d.code, d.err).toBe(0);
    const summary = JSON.parse(d.out);
    expect(summary.accepted).toBe(summary.events);
    const again = JSON.parse(
      (await tollgate("demo", "--days", "14", "--calls-per-day", "200", "--json")).out,
    );
    expect(again.duplicates).toBe(summary.events);

    const table = await tollgate("spend", "--by", "feature", "--from", "15d");
    expect(table.code, table.err).toBe(0);
    expect(table.out).toMatch(/^feature\s+calls\s+cost_usd/m);
    for (const f of ["chat-assistant", "summarize", "code-review", "support-agent", "TOTAL"])
      expect(table.out).toContain(f);

    const json = JSON.parse(
      (await tollgate("spend", "--by", "prompt_version", "--from", "15d", "--json")).out,
    );
    const rows: { key: string; calls: number; cost_nanousd: string }[] = json.rows;
    const calls = rows.reduce((a, r) => a + r.calls, 0);
    expect(calls).toBe(summary.events);
    // The regression: summarize-v2 costs more per call than summarize-v1.
    const perCall = (k: string) => {
      const r = rows.find((x) => x.key === k)!;
      return Number(BigInt(r.cost_nanousd) / BigInt(r.calls));
    };
    expect(perCall("summarize-v2")).toBeGreaterThan(2 * perCall("summarize-v1"));
  });

  it("demo's next step works as printed: it names the data dir (and workspace) the demo went to", async () => {
    const d = await tollgate("demo", "--days", "14", "--calls-per-day", "200", "-w", "demo-next");
    expect(d.code, d.err).toBe(0);
    const next = /next: npx tollgate (.*)$/m.exec(d.out)?.[1];
    expect(next, d.out).toBe(`--data-dir ${dataDir} spend --by feature --from 14d -w demo-next`);
    const res = await spawnCli(next!.split(" "), { cwd: dir });
    expect(res.code, res.err).toBe(0);
    expect(res.out).toContain("summarize");
  });

  it("rollup, explain and forecast print tables and JSON over the demo data", async () => {
    expect((await tollgate("demo", "--days", "14", "--calls-per-day", "200")).code).toBe(0);
    const demo = ["--data-mode", "demo", "--from", "15d"];
    const features = await tollgate("rollup", "features", ...demo);
    expect(features.code, features.err).toBe(0);
    expect(features.out).toMatch(/^feature\s+requests\s+cost\s+cost\/request/m);
    expect(features.out).toContain("summarize");
    const runs = JSON.parse((await tollgate("rollup", "agent-runs", ...demo, "--json")).out);
    expect(runs.agent_types[0]).toMatchObject({ agent_type: "support-agent" });
    expect((await tollgate("rollup", "nonsense")).code).toBe(2);
    const fx = JSON.parse((await tollgate("rollup", "features", ...demo, "--json")).out).features;
    const file = join(dir, "features.csv");
    expect((await tollgate("export", "rollup", "features", ...demo, "-o", file)).code).toBe(0);
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    const col = lines[0]!.split(",").indexOf("cost.nanousd");
    expect(lines).toHaveLength(fx.length + 1);
    expect(lines.slice(1).map((l) => l.split(",")[col])).toEqual(
      fx.map((f: { cost: { nanousd: string } }) => f.cost.nanousd),
    );
    const explain = await tollgate("explain", "--data-mode", "demo", "--from", "7d");
    expect(explain.code, explain.err).toBe(0);
    expect(explain.out).toMatch(/^Spend (rose|fell) /m);
    expect(explain.out).toMatch(/volume .* mix .* cost per request/);
    const forecast = JSON.parse((await tollgate("forecast", "--data-mode", "demo", "--json")).out);
    expect(forecast.workspace.days_left).toBeGreaterThan(0);
    expect(
      BigInt(forecast.workspace.projected.nanousd) >=
        BigInt(forecast.workspace.complete_days_to_date.nanousd),
    ).toBe(true);
  });

  it("a --to alone ends the default 30-day window (rollups and exports)", async () => {
    const to = new Date(Date.now() - 40 * 86_400_000).toISOString();
    const features = await tollgate("rollup", "features", "--to", to, "--json");
    expect(features.code, features.err).toBe(0);
    expect(JSON.parse(features.out).window.to).toBe(to);
    const file = join(dir, "old-features.csv");
    const exported = await tollgate("export", "rollup", "features", "--to", to, "-o", file, "--json");
    expect(exported.code, exported.err).toBe(0);
    const calls = await tollgate("export", "calls", "--to", to, "-o", join(dir, "old.csv"), "--json");
    expect(calls.code, calls.err).toBe(0);
  });

  it("export calls writes csv (with a .meta.json), json and parquet: every call once, exact totals", async () => {
    expect((await tollgate("demo", "--days", "14", "--calls-per-day", "200")).code).toBe(0);
    const spend = JSON.parse((await tollgate("spend", "--by", "day", "--from", "30d", "--json")).out);
    const calls = spend.rows.reduce((a: number, r: { calls: number }) => a + r.calls, 0);
    const cost = spend.rows.reduce(
      (a: bigint, r: { cost_nanousd: string }) => a + BigInt(r.cost_nanousd),
      0n,
    );
    const out = (f: string) => join(dir, `calls.${f}`);
    for (const f of ["csv", "json", "parquet"]) {
      const r = await tollgate("export", "calls", "--from", "30d", "--format", f, "-o", out(f), "--json");
      expect(r.code, r.err).toBe(0);
      expect(JSON.parse(r.out)).toMatchObject({ rows: calls, format: f });
    }
    const csv = readFileSync(out("csv"), "utf8").trimEnd().split("\n");
    expect(csv).toHaveLength(calls + 1);
    const header = csv[0]!.split(",");
    expect(header.slice(0, 3)).toEqual(["event_id", "workspace_id", "trace_id"]);
    const costCol = header.indexOf("cost_nanousd");
    expect(csv.slice(1).reduce((a, l) => a + BigInt(l.split(",")[costCol]!), 0n)).toBe(cost);
    const ids = new Set(csv.slice(1).map((l) => l.split(",")[0]));
    expect(ids.size).toBe(calls);
    const meta = JSON.parse(readFileSync(`${out("csv")}.meta.json`, "utf8"));
    expect(meta).toMatchObject({ rows: calls, coverage: { truncated: false }, columns: header });
    const json = JSON.parse(readFileSync(out("json"), "utf8"));
    expect(json.calls).toHaveLength(calls);
    expect(
      json.calls.reduce((a: bigint, c: { cost_nanousd: string }) => a + BigInt(c.cost_nanousd), 0n),
    ).toBe(cost);
    const { DuckDBInstance } = await import("@duckdb/node-api");
    const db = await DuckDBInstance.create(":memory:");
    const conn = await db.connect();
    const [[n, total]] = (
      await conn.runAndReadAll(`SELECT count(*), sum(cost_nanousd)::VARCHAR FROM '${out("parquet")}'`)
    ).getRowsJS() as [[bigint, string]];
    expect(Number(n)).toBe(calls);
    expect(BigInt(total)).toBe(cost);
    conn.closeSync();
    expect((await tollgate("export", "calls", "--format", "xml", "-o", out("xml"))).code).toBe(2);
  });

  it("ingest reports accepted/duplicate/rejected per line and exits 1 on rejects", async () => {
    const file = join(dir, "calls.jsonl");
    const good = (i: number) =>
      JSON.stringify({
        event_id: uuidv7(),
        ts_start: Date.now() - 1000 * i,
        provider: "openai",
        model: "gpt-4o-mini",
        input_uncached_tokens: 10,
        output_tokens: 5,
        feature: "cli-test",
      });
    writeFileSync(
      file,
      [
        good(1),
        good(2),
        "{not json",
        JSON.stringify({
          event_id: uuidv7(),
          ts_start: Date.now(),
          provider: "openai",
          model: "gpt-4o",
          output_tokens: -1,
        }),
        good(3),
      ].join("\n"),
    );
    const r = await tollgate("ingest", file, "--json");
    expect(r.code).toBe(1);
    const s = JSON.parse(r.out);
    expect(s).toMatchObject({ lines: 5, accepted: 3, duplicates: 0, rejected: 2 });
    expect(String(s.seconds)).toMatch(/^\d+(\.\d{1,3})?$/); // to the ms, no float noise
    expect(s.rejections.map((x: { line: number }) => x.line)).toEqual([3, 4]);
    expect(s.rejections[1].errors[0].field).toBe("output_tokens");
    const again = JSON.parse((await tollgate("ingest", file, "--json")).out);
    expect(again).toMatchObject({ accepted: 0, duplicates: 3, rejected: 2 });
  });

  it("ingest reports the first rejected lines in line order, whether the server or the JSON parse refused them", async () => {
    const file = join(dir, "rejects-in-order.jsonl");
    // Line 1 is refused by the server once its batch is sent; lines 2-61 are not JSON, refused as read.
    const refused = JSON.stringify({
      event_id: uuidv7(),
      ts_start: Date.now(),
      provider: "openai",
      model: "gpt-4o",
      output_tokens: -1,
    });
    writeFileSync(file, [refused, ...Array.from({ length: 60 }, () => "{not json")].join("\n"));
    const r = await tollgate("ingest", file, "--json");
    expect(r.code).toBe(1);
    const s = JSON.parse(r.out);
    expect(s.rejected).toBe(61);
    // The first 50 of the file: line 1 among them, not the 50 lines refused before its batch was sent.
    expect(s.rejections.map((x: { line: number }) => x.line)).toEqual(
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    const text = await tollgate("ingest", file);
    expect(text.out.split("\n")[2]).toMatch(/^ {2}line 1: output_tokens: /);
  });

  it("events get shows one call by its id (table or JSON); an unknown id fails with a clear message", async () => {
    const id = uuidv7();
    const file = join(dir, "one-call.jsonl");
    writeFileSync(
      file,
      JSON.stringify({
        event_id: id,
        ts_start: Date.now() - 5000,
        provider: "openai",
        model: "gpt-4o-mini",
        input_uncached_tokens: 1000,
        output_tokens: 200,
        feature: "cli-lookup",
        tags: ["a"],
      }),
    );
    expect((await tollgate("ingest", file, "--json")).code).toBe(0);
    const json = await tollgate("events", "get", id.toUpperCase(), "--json");
    expect(json.code, json.err).toBe(0);
    const { event, cost_usd } = JSON.parse(json.out);
    expect(event).toMatchObject({ event_id: id, feature: "cli-lookup", priced: true, tags: ["a"] });
    expect(cost_usd).toMatch(/^0\.000\d+$/); // 1,000 in + 200 out of gpt-4o-mini: a fraction of a cent
    const table = await tollgate("events", "get", id);
    expect(table.code, table.err).toBe(0);
    expect(table.out).toMatch(/^field\s+value/m);
    expect(table.out).toMatch(new RegExp(`^cost_usd\\s+${cost_usd.replace(".", "\\.")}$`, "m"));
    expect(table.out).toMatch(/^feature\s+cli-lookup$/m);
    expect(table.out).not.toMatch(/^user_id\s/m); // fields the call does not have are left out
    const missing = await tollgate("events", "get", "01900000-0000-7000-8000-000000000000");
    expect(missing.code).not.toBe(0);
    expect(missing.err).toMatch(/no call 01900000-0000-7000-8000-000000000000 in workspace default/);
  });

  it("keys create prints the key once, as JSON with --json", async () => {
    const r = await tollgate("keys", "create", "--workspace", "acme", "--role", "ingest", "--json");
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).key).toMatch(/^tg_ingest_[0-9a-f]{12}_/);
    expect((await tollgate("keys", "create", "--workspace", "acme", "--role", "boss")).code).toBe(2);
    const id = JSON.parse(r.out).id as string;
    expect((await tollgate("keys", "list", "--workspace", "acme")).out).toMatch(
      new RegExp(`${id}\\s+acme\\s+ingest.*live`),
    );
    expect((await tollgate("keys", "revoke", id, "--workspace", "acme")).code).toBe(0);
    const listed = JSON.parse((await tollgate("keys", "list", "--json")).out).keys.find(
      (k: { id: string }) => k.id === id,
    );
    expect(listed.revoked_at).toBeGreaterThan(0);
    const again = await tollgate("keys", "revoke", id, "--workspace", "acme");
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/no live key/);
  });

  it("budgets status lists a per-value budget before its first call, as --json does", async () => {
    const set = await tollgate(
      "budgets",
      "set",
      "each-user",
      "--window",
      "day",
      "--limit",
      "2",
      "--scope",
      "user_id=*",
      "--scope",
      "feature=no-calls-yet", // the demo data of the tests before has users: none of them in this feature
    );
    expect(set.code, set.err).toBe(0);
    const json = JSON.parse((await tollgate("budgets", "status", "each-user", "--json")).out);
    expect(json).toMatchObject({ id: "each-user", buckets: [] });
    for (const args of [
      ["budgets", "status"],
      ["budgets", "status", "each-user"],
    ]) {
      const r = await tollgate(...args);
      expect(r.code, r.err).toBe(0);
      expect(r.out).not.toMatch(/no budgets/);
      expect(r.out).toMatch(/^each-user\s+.*user_id=\*.*\bday\b.*\$2\.00/m);
    }
    expect((await tollgate("budgets", "delete", "each-user")).code).toBe(0);
  });

  it("runs kill takes a reason the refusal shows; unkill takes none and says when the run was not killed", async () => {
    const kill = await tollgate("runs", "kill", "cli-run", "--reason", "looping on a tool", "--json");
    expect(kill.code, kill.err).toBe(0);
    expect(JSON.parse(kill.out).killed).toMatchObject({ ceiling: "manual", value: "looping on a tool" });
    expect((await tollgate("runs", "unkill", "cli-run")).out).toContain("run cli-run: running");
    expect((await tollgate("runs", "unkill", "cli-run")).out).toContain(
      "run cli-run: was not killed (counters kept)",
    );
    // A reason given to unkill was dropped without a word: now it is refused as an unknown option.
    const withReason = await tollgate("runs", "unkill", "cli-run", "--reason", "x");
    expect(withReason.code).not.toBe(0);
    expect(withReason.err).toContain("unknown option '--reason'");
  });

  it("runs kill of a run with no call seen yet kills it, and says so: a mistyped id stops nothing that runs", async () => {
    const file = join(dir, "run.jsonl");
    const record = { provider: "openai", model: "gpt-4o-mini", input_uncached_tokens: 10, output_tokens: 5 };
    const call = {
      ...record,
      event_id: uuidv7(),
      ts_start: Date.now() - 60_000,
      agent_run_id: "cli-seen-run",
    };
    writeFileSync(file, JSON.stringify(call));
    expect((await tollgate("ingest", file, "--json")).code).toBe(0);
    const seen = await tollgate("runs", "kill", "cli-seen-run");
    expect(seen.code, seen.err).toBe(0);
    expect(seen.out).toBe("run cli-seen-run: killed\n");
    expect(seen.err).toBe("");
    expect(JSON.parse((await tollgate("runs", "kill", "cli-seen-run", "--json")).out).calls_seen).toBe(true);

    const unseen = await tollgate("runs", "kill", "cli-next-run");
    expect(unseen.code, unseen.err).toBe(0);
    expect(unseen.out).toBe("run cli-next-run: killed\n");
    expect(unseen.err).toBe(
      "note: no calls seen yet for run cli-next-run in workspace default; it is killed, and any call under it will be refused\n",
    );
    const json = await tollgate("runs", "kill", "cli-next-run-2", "--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({ state: "killed", calls_seen: false });
    expect((await tollgate("runs", "status", "cli-next-run", "--json")).out).toContain('"state": "killed"');
  });

  it("prices unpriced lists models without a price", async () => {
    const file = join(dir, "unpriced.jsonl");
    writeFileSync(
      file,
      `${JSON.stringify({ event_id: uuidv7(), ts_start: Date.now() - 5000, provider: "acme", model: "secret-model-1", input_uncached_tokens: 10, output_tokens: 5 })}\n`,
    );
    expect((await tollgate("ingest", file)).code).toBe(0);
    const out = JSON.parse((await tollgate("prices", "unpriced", "--since", "1d", "--json")).out);
    expect(out.models).toEqual([
      expect.objectContaining({ provider: "acme", model: "secret-model-1", calls: 1 }),
    ]);
  });
});
