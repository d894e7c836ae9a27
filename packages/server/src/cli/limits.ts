import { readFileSync } from "node:fs";
import { usdToNano } from "@tollgate/core";
import type { Command } from "commander";
import { parse as parseYaml } from "yaml";
import { bucketLabel } from "./budget-bucket.js";
import { callApi } from "./call-api.js";
import { CliError, printJson } from "./common.js";
import { precisionFrom, precisionOption } from "./precision.js";
import { renderTable, usdCell } from "./table.js";

type Json = Record<string, unknown>;

/** "user_id=u1" pairs → an object (a field given twice is refused); the value "*" means one bucket per distinct value. */
function pairs(list: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of list ?? []) {
    const i = p.indexOf("=");
    if (i < 1) throw new CliError(`${flag} takes FIELD=VALUE (got ${JSON.stringify(p)})`, 2);
    const [field, value] = [p.slice(0, i), p.slice(i + 1)];
    // Kept last-wins, a budget meant for acme would be saved for every customer (or the other way).
    if (Object.hasOwn(out, field))
      throw new CliError(
        `${flag} gives ${field} twice (${JSON.stringify(out[field])} and ${JSON.stringify(value)}): a budget scopes a field to one value, or "*" for each`,
        2,
      );
    out[field] = value;
  }
  return out;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const ws = (w: string) => `workspace=${encodeURIComponent(w)}`;

function readSpecFile(path: string): unknown {
  try {
    return parseYaml(readFileSync(path, "utf8"));
  } catch (e) {
    throw new CliError(`cannot read ${path}: ${(e as Error).message}`, 2);
  }
}

/** Budgets' buckets as a table, USD to `digits` decimals (the answer's exact decimal strings are --json's). */
function printStatus(budgets: Json[], digits: number): void {
  const usd = (decimal: unknown) => usdCell(usdToNano(String(decimal)), digits);
  const rows: string[][] = [];
  for (const b of budgets) {
    const spec = b.budget as Json;
    const scope = spec.scope as Record<string, string>;
    // A per-value budget has no bucket before its first call: still listed (with its limit), as --json lists it.
    if (!(b.buckets as Json[]).length)
      rows.push([
        String(b.id),
        bucketLabel(scope, {}),
        String(spec.window),
        "-",
        "-",
        "-",
        usd(spec.limit_usd),
        "-",
        "-",
      ]);
    for (const k of b.buckets as Json[]) {
      rows.push([
        String(b.id),
        bucketLabel(scope, k.bucket as Record<string, string>),
        String(spec.window),
        String(k.state),
        usd(k.spend_usd),
        usd(k.reserved_usd),
        usd(k.limit_usd),
        usd(k.remaining_usd),
        (k.reset_at as string | null) ?? "never",
      ]);
    }
  }
  if (!rows.length) {
    console.log("no budgets (create one with `tollgate budgets set`)");
    return;
  }
  console.log(
    renderTable(
      ["budget", "bucket", "window", "state", "spend", "reserved", "limit", "remaining", "resets"],
      rows,
    ),
  );
}

interface BudgetFlags {
  file?: string;
  window?: string;
  limit?: string;
  scope?: string[];
  warnAt?: string;
  action: string;
  throttleRpm?: string;
  unpriced: string;
  failMode: string;
  timezone: string;
  override?: string[];
  workspace: string;
  json?: boolean;
  precision?: string;
}

/** The flags of a command that shows what is stored: its workspace, --json, and USD's decimals. */
interface ReadFlags {
  workspace: string;
  json?: boolean;
  precision?: string;
}

/** A number given to a flag (the server checks its range); not one is a usage error naming the flag. */
function number(text: string, flag: string): number {
  const n = text.trim() === "" ? Number.NaN : Number(text);
  if (!Number.isFinite(n)) throw new CliError(`${flag} takes numbers; ${JSON.stringify(text)} is not one`, 2);
  return n;
}

/** The flag each field of a budget built from flags came from: the server's refusals name fields. */
const BUDGET_FLAGS: Record<string, string> = {
  id: "ID",
  scope: "--scope",
  window: "--window",
  timezone: "--timezone",
  limit_usd: "--limit",
  warn_at: "--warn-at",
  action: "--action",
  throttle_rpm: "--throttle-rpm",
  unpriced: "--unpriced",
  fail_mode: "--fail-mode",
  overrides: "--override",
};

const AGENT_FLAGS: Record<string, string> = {
  max_cost_usd: "--max-cost",
  max_total_tokens: "--max-tokens",
  max_llm_calls: "--max-llm-calls",
  max_tool_calls: "--max-tool-calls",
  max_retries: "--max-retries",
  max_span_depth: "--max-depth",
  max_wall_time_s: "--max-wall-time",
};

/** budgets set's flags that are not part of the budget itself: they go with --file too. */
const NOT_SPEC = new Set(["file", "workspace", "json", "precision"]);

/**
 * With --file the budget is the file's: a flag of the budget given beside it (--window week) would be
 * dropped without a word, and the budget saved as the file has it.
 */
function refuseSpecFlags(cmd: Command): void {
  const given = cmd.options
    .filter(
      (opt) => !NOT_SPEC.has(opt.attributeName()) && cmd.getOptionValueSource(opt.attributeName()) === "cli",
    )
    .map((opt) => opt.long!);
  if (!given.length) return;
  const named = given.length === 1 ? given[0] : `${given.slice(0, -1).join(", ")} and ${given.at(-1)}`;
  const them = given.length === 1 ? "it" : "them";
  throw new CliError(
    `${named}: with --file the budget is the file's; set ${them} in the file, or leave --file out`,
    2,
  );
}

export function registerLimits(program: Command): void {
  const budgets = program
    .command("budgets")
    .description("spend caps: set, inspect and remove budgets (every change is audited)");
  budgets
    .command("set [id]")
    .description("create or replace a budget (from flags, or a YAML/JSON file with --file)")
    .option("--file <path>", "the budget as YAML/JSON (same fields as POST /api/budgets)")
    .option("--window <w>", "day | week | month | lifetime | <N>h (rolling)")
    .option("--limit <usd>", 'amount in USD, a decimal string, e.g. "1.00"')
    .option(
      "--scope <field=value>",
      "repeatable: user_id=u1, customer_id=* (each customer separately), tag=beta, …",
      collect,
    )
    .option("--warn-at <fractions>", "comma-separated warning thresholds, e.g. 0.5,0.8")
    .option("--action <a>", "block (hard cap) | throttle | alert_only", "block")
    .option("--throttle-rpm <n>", "with --action throttle: requests/min allowed past the cap")
    .option("--unpriced <p>", "models without a price: allow | block", "allow")
    .option("--fail-mode <m>", "when the limit backend is down: fail_open | fail_closed", "fail_open")
    .option("--timezone <tz>", "IANA zone for day/week/month windows", "UTC")
    .option("--override <field=value:usd>", "repeatable per-value limit, e.g. customer_id=acme:500", collect)
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--json", "print the stored budget as JSON")
    .addOption(precisionOption())
    .action(async (id: string | undefined, o: BudgetFlags, cmd: Command) => {
      const digits = precisionFrom(o.precision) ?? 2; // refused before the budget is saved
      let spec: unknown;
      if (o.file) {
        refuseSpecFlags(cmd);
        spec = readSpecFile(o.file);
        // An ID given with --file names the budget: the file's own id, if it has one, must agree, or
        // `set other --file template.yaml` would replace the template's budget instead of making "other".
        if (id !== undefined && spec !== null && typeof spec === "object" && !Array.isArray(spec)) {
          const fileId = (spec as Json).id;
          if (fileId === undefined) spec = { ...(spec as Json), id };
          else if (fileId !== id)
            throw new CliError(
              `${o.file} is budget ${JSON.stringify(fileId)}, not ${JSON.stringify(id)}: drop the ID, or change the file's id`,
              2,
            );
        }
      } else {
        if (!id || !o.window || !o.limit) throw new CliError("give ID, --window and --limit (or --file)", 2);
        spec = {
          id,
          scope: pairs(o.scope, "--scope"),
          window: o.window,
          timezone: o.timezone,
          limit_usd: o.limit,
          // Given empty (a script's unset variable), it is refused: no warnings is leaving the flag out.
          warn_at: o.warnAt !== undefined ? o.warnAt.split(",").map((x) => number(x, "--warn-at")) : [],
          action: o.action,
          ...(o.throttleRpm !== undefined ? { throttle_rpm: number(o.throttleRpm, "--throttle-rpm") } : {}),
          unpriced: o.unpriced,
          fail_mode: o.failMode,
          overrides: (o.override ?? []).map((x: string) => {
            const m = /^([^=]+)=(.*):([\d.]+)$/.exec(x);
            if (!m) throw new CliError(`--override takes FIELD=VALUE:USD (got ${JSON.stringify(x)})`, 2);
            return { when: { [m[1]!]: m[2]! }, limit_usd: m[3]! };
          }),
        };
      }
      const res = await callApi(cmd, "POST", `/api/budgets?${ws(o.workspace)}`, "budgets set", {
        body: spec,
        flags: o.file ? {} : BUDGET_FLAGS,
      });
      if (o.json) printJson(res);
      else
        console.log(
          `budget ${res.id} saved: ${usdCell(usdToNano(res.budget.limit_usd), digits)} per ${res.budget.window}, ${res.budget.action}`,
        );
    });
  budgets
    .command("status [id]")
    .description("spend, reservations, state and reset time of every budget (or one)")
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--json", "print as JSON")
    .addOption(precisionOption())
    .action(async (id: string | undefined, o: ReadFlags, cmd: Command) => {
      const digits = precisionFrom(o.precision) ?? 2;
      const path = id ? `/api/budgets/${encodeURIComponent(id)}` : "/api/budgets";
      const res = await callApi(cmd, "GET", `${path}?${ws(o.workspace)}`, "budgets status", {
        checkWorkspace: o.workspace,
      });
      if (o.json) return printJson(res);
      printStatus(id ? [res] : res.budgets, digits);
    });
  budgets
    .command("delete <id>")
    .description("remove a budget")
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--json", "print what was deleted as JSON")
    .action(async (id: string, o: { workspace: string; json?: boolean }, cmd: Command) => {
      const res = await callApi(
        cmd,
        "DELETE",
        `/api/budgets/${encodeURIComponent(id)}?${ws(o.workspace)}`,
        "budgets delete",
      );
      if (o.json) printJson(res);
      else console.log(`budget ${id} deleted`);
    });
  budgets
    .command("audit <id>")
    .description("who changed a budget, when, and from what to what")
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--json", "print as JSON")
    .action(async (id: string, o: { workspace: string; json?: boolean }, cmd: Command) => {
      const res = await callApi(
        cmd,
        "GET",
        `/api/budgets/${encodeURIComponent(id)}/audit?${ws(o.workspace)}`,
        "budgets audit",
      );
      if (o.json) return printJson(res);
      console.log(
        renderTable(
          ["when", "action", "by", "before", "after"],
          (res.audit as Json[]).map((a) => [
            new Date(a.ts as number).toISOString(),
            String(a.action),
            String(a.actor),
            a.before ? JSON.stringify(a.before) : "-",
            a.after ? JSON.stringify(a.after) : "-",
          ]),
        ),
      );
    });

  const runs = program.command("runs").description("agent runs: status, kill switch");
  runs
    .command("status <run-id>")
    .description("what a run has used, and whether it is killed")
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--json", "print as JSON")
    .addOption(precisionOption())
    .action(async (runId: string, o: ReadFlags, cmd: Command) => {
      const digits = precisionFrom(o.precision) ?? 2;
      const res = await callApi(
        cmd,
        "GET",
        `/api/runs/${encodeURIComponent(runId)}?${ws(o.workspace)}`,
        "runs status",
      );
      if (o.json) return printJson(res);
      const u = res.usage as Json;
      const k = res.killed;
      const why = !k
        ? ""
        : k.ceiling === "manual"
          ? ` (by hand${k.by ? `, ${k.by}` : ""}: ${k.value})`
          : ` (${k.ceiling}: ${k.value} of ${k.limit})`;
      console.log(`run ${runId}: ${res.state}${why}`);
      console.log(
        `  cost ${usdCell(BigInt(u.cost_nanousd as string), digits)}, ${u.total_tokens} tokens, ${u.llm_calls} LLM calls, ${u.tool_calls} tool calls, ${u.retries} retries`,
      );
    });
  for (const verb of ["kill", "unkill"] as const) {
    const command = runs
      .command(`${verb} <run-id>`)
      .description(
        verb === "kill"
          ? "refuse every further call of a run (429 agent_run_killed)"
          : "let a killed run continue, with fresh counters",
      );
    // Only a kill has a reason to show (its refusals say it); an unkill took one and dropped it.
    if (verb === "kill") command.option("--reason <text>", "why (shown in the refusal)");
    command
      .option("-w, --workspace <id>", "workspace", "default")
      .option("--json", "print as JSON")
      .action(
        async (runId: string, o: { workspace: string; reason?: string; json?: boolean }, cmd: Command) => {
          const res = await callApi(
            cmd,
            "POST",
            `/api/runs/${encodeURIComponent(runId)}/${verb}?${ws(o.workspace)}`,
            `runs ${verb}`,
            { body: verb === "kill" ? { reason: o.reason } : undefined },
          );
          if (o.json) return printJson(res);
          if (res.was_killed === false) console.log(`run ${runId}: was not killed (counters kept)`);
          else console.log(`run ${runId}: ${res.state}`);
          if (res.calls_seen === false)
            console.error(
              `note: no calls seen yet for run ${runId} in workspace ${o.workspace}; it is killed, and any call under it will be refused`,
            );
        },
      );
  }

  const agents = program.command("agents").description("per agent_type ceilings for agent runs");
  agents
    .command("set <agent-type>")
    .description("set the ceilings of an agent type (a run crossing any of them is killed)")
    .option("--max-cost <usd>", "cost per run, USD")
    .option("--max-tokens <n>", "total tokens per run")
    .option("--max-llm-calls <n>", "LLM calls per run")
    .option("--max-tool-calls <n>", "tool calls per run")
    .option("--max-retries <n>", "retries per run")
    .option("--max-depth <n>", "span depth")
    .option("--max-wall-time <s>", "seconds from the run's first call")
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--json", "print the stored ceilings as JSON")
    .action(async (type: string, o: Record<string, string | undefined>, cmd: Command) => {
      const num = (v: string | undefined, flag: string) => (v === undefined ? undefined : number(v, flag));
      const spec = {
        max_cost_usd: o.maxCost,
        max_total_tokens: num(o.maxTokens, "--max-tokens"),
        max_llm_calls: num(o.maxLlmCalls, "--max-llm-calls"),
        max_tool_calls: num(o.maxToolCalls, "--max-tool-calls"),
        max_retries: num(o.maxRetries, "--max-retries"),
        max_span_depth: num(o.maxDepth, "--max-depth"),
        max_wall_time_s: num(o.maxWallTime, "--max-wall-time"),
      };
      const res = await callApi(
        cmd,
        "PUT",
        `/api/agents/${encodeURIComponent(type)}?${ws(o.workspace!)}`,
        "agents set",
        { body: JSON.parse(JSON.stringify(spec)), flags: AGENT_FLAGS },
      );
      if (o.json) printJson(res);
      else console.log(`ceilings for ${type} saved`);
    });
  agents
    .command("list")
    .description("agent types and their ceilings")
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--json", "print as JSON")
    .action(async (o: { workspace: string; json?: boolean }, cmd: Command) => {
      const res = await callApi(cmd, "GET", `/api/agents?${ws(o.workspace)}`, "agents list", {
        checkWorkspace: o.workspace,
      });
      if (o.json) return printJson(res);
      if (!(res.agents as Json[]).length)
        return console.log("no agent types with ceilings (set some with `tollgate agents set TYPE`)");
      console.log(
        renderTable(
          ["agent_type", "source", "ceilings"],
          (res.agents as Json[]).map((a) => [String(a.id), String(a.source), JSON.stringify(a.spec)]),
        ),
      );
    });
}
