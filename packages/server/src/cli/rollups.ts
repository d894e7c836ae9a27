import type { Command } from "commander";
import { keyLabel } from "../query/key-label.js";
import { bucketLabel } from "./budget-bucket.js";
import { connect } from "./client.js";
import {
  CliError,
  clientOptions,
  expectOk,
  type GlobalOpts,
  noteCoverage,
  printJson,
  QUERY_FLAGS,
} from "./common.js";
import { precisionFrom, precisionOption } from "./precision.js";
import { formatInt, percent, percentChange, renderTable, usdCell } from "./table.js";
import { printable } from "./terminal-text.js";
import { connectToRead } from "./workspace-check.js";

/** How long purge waits for the server's answer unless --timeout says: it comes when the purge is done. */
export const PURGE_SECONDS = 3600;

// biome-ignore lint/suspicious/noExplicitAny: API answers are rendered loosely
type Json = any;

/** The rollups, each with the field of its answer that holds the rows. */
export const ROLLUP_ROWS = {
  "user-day": "days",
  features: "features",
  "agent-runs": "agent_types",
  customers: "customers",
  outcomes: "rows",
} as const;
export type RollupName = keyof typeof ROLLUP_ROWS;
const ROLLUPS = Object.keys(ROLLUP_ROWS) as RollupName[];
export const isRollup = (name: string): name is RollupName => Object.hasOwn(ROLLUP_ROWS, name);

export interface WindowOpts {
  from?: string;
  to?: string;
  workspace: string;
  customer?: string;
  feature?: string;
  dataMode?: string;
  deployment?: string;
  json?: boolean;
  precision?: string;
}

/** A table's USD figure: to `digits` decimals (cents unless given), or to --precision's when asked. */
type Usd = (m: { nanousd: string } | null, digits?: number) => string;

const usdAt =
  (precision: number | undefined): Usd =>
  (m, digits = 2) =>
    m === null ? "-" : usdCell(BigInt(m.nanousd), precision ?? digits);
const nano = (m: { nanousd: string }) => BigInt(m.nanousd);
/** Percentages from the answer's integers (nano-USD, counts), not its float fractions: one rounding everywhere. */
const change = (now: { nanousd: string } | null, before: { nanousd: string } | null) =>
  now && before ? percentChange(nano(now), nano(before)) : "-";

/** Rows shown per dimension by `explain` and `forecast`; the others are one row (`otherLabel`). */
const EXPLAIN_ROWS = 5;
const FORECAST_ROWS = 10;
const otherLabel = (count: number) => `(other: ${count} more)`;
/** One money figure of rows added up, as the answer's JSON money. */
const moneySum = (rows: Json[], pick: (r: Json) => { nanousd: string }) => ({
  nanousd: String(rows.reduce((a: bigint, r) => a + nano(pick(r)), 0n)),
});

/**
 * The drivers a table does not show as one row: the answer's listed ones past the table's rows, and the
 * answer's own sum of those it did not list. With it, a dimension's rows add up to the totals exactly.
 */
function otherDrivers(unshown: Json[], unlisted: Json) {
  const parts = [...unshown, unlisted];
  const add = (f: (d: Json) => { nanousd: string }) => moneySum(parts, f);
  return {
    count: unshown.length + unlisted.segments,
    before: { cost: add((d) => d.before.cost) },
    after: { cost: add((d) => d.after.cost) },
    change: add((d) => d.change),
    volume: add((d) => d.volume),
    mix: add((d) => d.mix),
    rate: add((d) => d.rate),
  };
}

function windowOptions(cmd: Command, defaults: { from?: string; precision?: string } = {}): Command {
  cmd
    .option(
      "--from <time>",
      `start: ISO date/time or a span back from now (7d, 24h)${defaults.from ? `; default: ${defaults.from}` : ""}`,
    )
    .option("--to <time>", "end (exclusive)");
  return filterOptions(cmd, defaults.precision);
}

/** The workspace, the filters, --json and --precision (`precisionDefaults`: as its help says them) of an analytics command. */
function filterOptions(cmd: Command, precisionDefaults?: string): Command {
  return cmd
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--customer <id>", "only this customer_id")
    .option("--feature <name>", "only this feature")
    .option("--data-mode <mode>", "real (default) | demo | test | all")
    .option("--deployment <name>", "prod (default; records without one count as prod) | staging | … | all")
    .option("--json", "print the answer as JSON")
    .addOption(precisionOption(precisionDefaults));
}

/** The query string of an analytics request: window, filters, and any extra parameters given. */
export function windowQuery(o: WindowOpts, extra: Record<string, string | undefined> = {}): URLSearchParams {
  const q = new URLSearchParams({ workspace: o.workspace });
  const set = (k: string, v: string | undefined) => v !== undefined && q.set(k, v);
  set("from", o.from);
  set("to", o.to);
  set("customer_id", o.customer);
  set("feature", o.feature);
  set("data_mode", o.dataMode);
  set("deployment", o.deployment);
  for (const [k, v] of Object.entries(extra)) set(k, v);
  return q;
}

/** One analytics answer of a workspace (checked first: workspace-check.ts), or the server's message. */
async function get(cmd: Command, workspace: string, path: string, what: string): Promise<Json> {
  const client = await connectToRead(cmd, workspace);
  try {
    return expectOk(await client.request("GET", path), what, QUERY_FLAGS);
  } finally {
    await client.close();
  }
}

const TABLES: Record<RollupName, (res: Json, usd: Usd) => string> = {
  "user-day": (res, usd) =>
    renderTable(
      ["day", "cost", "users", "requests", "median", "p90", "p99", "max", "top user"],
      res.days.map((d: Json) => [
        d.day,
        usd(d.cost),
        formatInt(d.users),
        formatInt(d.requests),
        usd(d.median, 4),
        usd(d.p90, 4),
        usd(d.p99, 4),
        usd(d.max, 4),
        d.top_users[0] ? `${d.top_users[0].user_id} ${usd(d.top_users[0].cost)}` : "-",
      ]),
    ),
  features: (res, usd) =>
    renderTable(
      ["feature", "requests", "cost", "cost/request", "before", "change", "cost change"],
      res.features.map((f: Json) => [
        keyLabel(f.feature),
        formatInt(f.requests),
        usd(f.cost),
        usd(f.cost_per_request, 6),
        usd(f.previous?.cost_per_request ?? null, 6),
        change(f.cost_per_request, f.previous?.cost_per_request ?? null),
        change(f.cost, f.previous?.cost ?? null),
      ]),
    ),
  "agent-runs": (res, usd) =>
    renderTable(
      ["agent_type", "runs", "cost", "median", "p99", "max", "killed", "llm/run", "tools/run"],
      res.agent_types.map((a: Json) => [
        keyLabel(a.agent_type),
        formatInt(a.runs),
        usd(a.cost),
        usd(a.median, 4),
        usd(a.p99, 4),
        usd(a.max, 4),
        formatInt(a.killed_runs),
        a.llm_calls_per_run.toFixed(1),
        a.tool_calls_per_run.toFixed(1),
      ]),
    ),
  customers: (res, usd) => {
    const total = res.customers.reduce((a: bigint, c: Json) => a + nano(c.cost), 0n);
    return renderTable(
      [
        "customer",
        "cost",
        "share",
        "requests",
        "users",
        "cost/request",
        "month to date",
        "last month to date",
        "change",
      ],
      res.customers.map((c: Json) => [
        keyLabel(c.customer_id),
        usd(c.cost),
        percent(nano(c.cost), total),
        formatInt(c.requests),
        formatInt(c.users),
        usd(c.cost_per_request, 6),
        usd(c.month_to_date),
        usd(c.last_month_to_date),
        change(c.month_to_date, c.last_month_to_date),
      ]),
    );
  },
  outcomes: (res, usd) =>
    renderTable(
      [res.by, "requests", "succeeded", "success", "cost", "cost/success"],
      res.rows.map((r: Json) => [
        keyLabel(r[res.by]),
        formatInt(r.requests),
        formatInt(r.ok_requests),
        r.success_rate === null ? "-" : percent(BigInt(r.ok_requests), BigInt(r.requests)),
        usd(r.cost),
        usd(r.cost_per_success, 6),
      ]),
    ),
};

/** The flags one rollup alone reads (`rollup` and `export rollup`). */
const ONE_ROLLUP_FLAGS = [
  ["--by", "by", "outcomes"],
  ["--top", "top", "user-day"],
] as const;

/** Given to a rollup that does not read it, a flag would be ignored: the table would not be what was asked. */
export function refuseOtherRollupsFlags(cmd: Command, name: RollupName): void {
  for (const [flag, key, rollup] of ONE_ROLLUP_FLAGS)
    if (name !== rollup && cmd.getOptionValueSource(key) === "cli")
      throw new CliError(`${flag} is for rollup ${rollup} only; rollup ${name} takes no ${flag}`, 2);
}

export function registerRollups(program: Command): void {
  windowOptions(
    program
      .command("rollup")
      .argument("<name>", ROLLUPS.join(" | "))
      .description(
        "cost per user per day, per feature request, per agent run, per customer, per successful outcome",
      )
      .option("--by <dimension>", "outcomes: feature | model | prompt_version", "feature")
      .option("--top <n>", "user-day: top users per day", "5"),
    // Said, not sent: the server's default window is the 30 days before --to (a "30d" sent along would be
    // before now, and a --to further back than that a 400 about a --from never given).
    { from: "the 30 days before --to", precision: "cents; per-call and per-request figures 4 or 6" },
  ).action(async (name: string, o: WindowOpts & { by: string; top: string }, cmd: Command) => {
    if (!isRollup(name)) throw new CliError(`rollup must be one of ${ROLLUPS.join(", ")}`, 2);
    refuseOtherRollupsFlags(cmd, name);
    const usd = usdAt(precisionFrom(o.precision));
    const extra = name === "outcomes" ? { by: o.by } : name === "user-day" ? { top: o.top } : {};
    const res = await get(
      cmd,
      o.workspace,
      `/api/rollups/${name}?${windowQuery(o, extra)}`,
      `rollup ${name}`,
    );
    if (o.json) return printJson(res);
    console.log(`${res.window.from} – ${res.window.to}`);
    console.log(TABLES[name](res, usd));
    noteCoverage(res.coverage);
  });

  windowOptions(
    program
      .command("explain")
      .description(
        "why spend changed: volume / mix / cost-per-request split, drivers, prompt deploys, concentration",
      )
      .option(
        "--vs-from <time>",
        "start of the period compared with (default: the same span of the month before; with --from, the period right before)",
      )
      .option("--vs-to <time>", "end of the period compared with"),
    // The server's default (GET /api/variance): the month so far against the same span of the month before.
    { from: "the start of --to's UTC month (this month so far)" },
  ).action(async (o: WindowOpts & { vsFrom?: string; vsTo?: string }, cmd: Command) => {
    const usd = usdAt(precisionFrom(o.precision));
    const res = await get(
      cmd,
      o.workspace,
      `/api/variance?${windowQuery(o, { vs_from: o.vsFrom, vs_to: o.vsTo })}`,
      "explain",
    );
    if (o.json) return printJson(res);
    console.log(`${res.current.from} – ${res.current.to}  vs  ${res.previous.from} – ${res.previous.to}\n`);
    noteCoverage(res.coverage);
    // The narrative names features and customers as recorded: escaped as table cells are.
    for (const line of res.narrative) console.log(printable(line));
    for (const by of res.dimensions) {
      const drivers: Json[] = res.drivers[by];
      if (!drivers.length) continue;
      const rest = otherDrivers(drivers.slice(EXPLAIN_ROWS), res.drivers_other[by]);
      const rows = drivers.slice(0, EXPLAIN_ROWS).map((s) => [keyLabel(s.key), s] as const);
      if (rest.count) rows.push([otherLabel(rest.count), rest]);
      console.log(`\n${by}`);
      console.log(
        renderTable(
          [by, "before", "after", "change", "volume", "mix", "cost/request"],
          rows.map(([label, s]) => [
            label,
            usd(s.before.cost),
            usd(s.after.cost),
            usd(s.change),
            usd(s.volume),
            usd(s.mix),
            usd(s.rate),
          ]),
        ),
      );
    }
  });

  // No --from / --to: the forecast is of this UTC month (the API refuses a window).
  filterOptions(
    program.command("forecast").description("month-end projection from the recent daily run rate"),
  ).action(async (o: WindowOpts, cmd: Command) => {
    const usd = usdAt(precisionFrom(o.precision));
    const res = await get(cmd, o.workspace, `/api/forecast?${windowQuery(o)}`, "forecast");
    if (o.json) return printJson(res);
    const w = res.workspace;
    console.log(
      `${res.month}: ${usd(w.to_date)} so far, ${usd(w.run_rate_per_day)}/day over the last ${w.window_days} days`,
    );
    console.log(
      `projected ${usd(w.projected)} (90%: ${usd(w.low)} – ${usd(w.high)}), ${w.days_left} days left`,
    );
    console.log(`method: ${res.method}\n`);
    noteCoverage(res.coverage);
    if (res.budgets.length) {
      console.log(
        renderTable(
          ["budget", "bucket", "state", "remaining", "per day", "over", "days left", "before reset"],
          res.budgets.map((b: Json) => [
            b.budget_id,
            // A server older than the CLI names no scope: the bucket's own fields then.
            bucketLabel(b.scope ?? {}, b.bucket),
            b.state,
            usd(b.remaining),
            usd(b.run_rate_per_day),
            // The days the rate is the mean of: fewer than 7 for a bucket new in them.
            b.run_rate_days === null ? "-" : `${b.run_rate_days}d`,
            b.days_until_exhausted === null ? "-" : String(b.days_until_exhausted),
            b.exhausted_before_reset === null ? "-" : b.exhausted_before_reset ? "EXHAUSTED" : "ok",
          ]),
        ),
      );
      console.log();
      // Why a bucket has no rate ("-"): a bucket of calls without a value, or none a complete day old.
      for (const b of res.budgets)
        if (b.note)
          console.error(
            printable(`note: budget ${b.budget_id}, ${bucketLabel(b.scope ?? {}, b.bucket)}: ${b.note}`),
          );
    }
    for (const by of ["customer_id", "feature"]) {
      const all: Json[] = res[by];
      const rows = all.slice(0, FORECAST_ROWS).map((r) => [keyLabel(r.key), r] as const);
      const rest = all.slice(FORECAST_ROWS);
      if (rest.length)
        rows.push([
          otherLabel(rest.length),
          {
            to_date: moneySum(rest, (r) => r.to_date),
            run_rate_per_day: moneySum(rest, (r) => r.run_rate_per_day),
            projected: moneySum(rest, (r) => r.projected),
          },
        ]);
      console.log(
        renderTable(
          [by, "to date", "per day", "projected"],
          rows.map(([label, r]) => [label, usd(r.to_date), usd(r.run_rate_per_day), usd(r.projected)]),
        ),
      );
      console.log();
    }
  });
}

export function registerPurge(program: Command): void {
  program
    .command("purge")
    .description("retention: delete raw calls older than N days and daily summaries older than M months")
    .option("--raw-days <n>", "keep this many days of raw calls (older ones stay in the daily summaries)")
    .option("--summary-months <n>", "keep this many months of daily summaries")
    .option("--json", "print the result as JSON")
    .action(async (o: { rawDays?: string; summaryMonths?: string; json?: boolean }, cmd: Command) => {
      const num = (v: string | undefined, name: string) => {
        if (v === undefined) return undefined;
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1)
          throw new CliError(`${name} must be a whole number of at least 1`, 2);
        return n;
      };
      const body = {
        raw_days: num(o.rawDays, "--raw-days"),
        summary_months: num(o.summaryMonths, "--summary-months"),
      };
      if (body.raw_days === undefined && body.summary_months === undefined)
        throw new CliError("give --raw-days, --summary-months or both", 2);
      // The server answers once the purge is done: minutes on a large store.
      const client = await connect(clientOptions(cmd.optsWithGlobals<GlobalOpts>(), PURGE_SECONDS));
      try {
        const res = expectOk(await client.request("POST", "/api/admin/purge", body), "purge", {
          raw_days: "--raw-days",
          summary_months: "--summary-months",
        });
        if (o.json) return printJson(res);
        console.log(
          `deleted ${formatInt(res.raw_deleted)} raw calls before ${res.raw_before ?? "-"}, ` +
            `${formatInt(res.summary_deleted)} summary rows before ${res.summary_before ?? "-"}`,
        );
        if (res.raw_kept_for_limits) console.error(`note: ${res.raw_kept_for_limits}`);
      } finally {
        await client.close();
      }
    });
}
