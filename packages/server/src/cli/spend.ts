import { formatUsd } from "@tollgate/core";
import type { Command } from "commander";
import { keyLabel } from "../query/key-label.js";
import { parseTime, QueryTimeError } from "../query-time.js";
import { SPEND_DIMENSIONS } from "../store/types.js";
import { DAY_MS } from "../time.js";
import { CliError, expectOk, noteCoverage, printJson, QUERY_FLAGS } from "./common.js";
import { precisionFrom, precisionOption } from "./precision.js";
import { windowQuery } from "./rollups.js";
import { formatInt, groupThousands, percent, renderTable } from "./table.js";
import { connectToRead } from "./workspace-check.js";

export function registerSpend(program: Command): void {
  program
    .command("spend")
    .description("spend rollup grouped by one dimension over a time range")
    .requiredOption("--by <dimension>", SPEND_DIMENSIONS.join(" | "))
    .option(
      "--from <time>",
      "start: ISO date/time or a span back from now (7d, 24h); default: the 30 days before --to",
    )
    .option("--to <time>", "end (exclusive): ISO date/time or span", "now")
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--customer <id>", "only this customer_id")
    .option("--feature <name>", "only this feature")
    .option("--data-mode <mode>", "only this data_mode: real | demo | test, or all (the default: every one)")
    .option(
      "--deployment <name>",
      "only this deployment (prod counts calls without one, as the rollups do), or all (the default: every one, and calls without one)",
    )
    .option("--json", "print rows as JSON")
    .addOption(precisionOption())
    .action(
      async (
        o: {
          by: string;
          from?: string;
          to: string;
          workspace: string;
          customer?: string;
          dataMode?: string;
          deployment?: string;
          feature?: string;
          json?: boolean;
          precision?: string;
        },
        cmd: Command,
      ) => {
        const digits = precisionFrom(o.precision) ?? 2;
        const by = o.by === "customer" ? "customer_id" : o.by === "user" ? "user_id" : o.by;
        if (!(SPEND_DIMENSIONS as readonly string[]).includes(by))
          throw new CliError(`--by must be one of ${SPEND_DIMENSIONS.join(", ")}`, 2);
        // Filters as the rollups send them: an empty one too, which the server refuses (dropped, it would
        // answer for everything, as if that were the customer's spend).
        const q = windowQuery({ ...o, from: o.from ?? thirtyDaysBefore(o.to) }, { by });
        const client = await connectToRead(cmd, o.workspace);
        try {
          const res = expectOk(await client.request("GET", `/api/spend?${q}`), "spend", QUERY_FLAGS);
          if (o.json) return printJson(res);
          const rows: {
            key: string | null;
            calls: number;
            cost_nanousd: string;
            input_tokens: number;
            output_tokens: number;
            unpriced_calls: number;
          }[] = res.rows;
          const total = rows.reduce((a, r) => a + BigInt(r.cost_nanousd), 0n);
          console.log(
            renderTable(
              [by, "calls", "cost_usd", "share", "input_tok", "output_tok", "unpriced"],
              [
                ...rows.map((r) => [
                  keyLabel(r.key),
                  formatInt(r.calls),
                  groupThousands(formatUsd(BigInt(r.cost_nanousd), digits)),
                  percent(BigInt(r.cost_nanousd), total),
                  formatInt(r.input_tokens),
                  formatInt(r.output_tokens),
                  formatInt(r.unpriced_calls),
                ]),
                [
                  "TOTAL",
                  formatInt(rows.reduce((a, r) => a + r.calls, 0)),
                  groupThousands(formatUsd(total, digits)),
                  percent(total, total), // 0.0% of nothing
                  "",
                  "",
                  formatInt(rows.reduce((a, r) => a + r.unpriced_calls, 0)),
                ],
              ],
            ),
          );
          noteCoverage(res.coverage);
        } finally {
          await client.close();
        }
      },
    );
}

/**
 * The default start: the 30 days before --to, wherever it is (a "30d" sent along would be 30 days before
 * now, and a --to further back than that a 400 about a --from never given). An unreadable --to is left to
 * the server, which names it.
 */
function thirtyDaysBefore(to: string): string {
  try {
    return new Date(Math.max(0, parseTime(to) - 30 * DAY_MS)).toISOString();
  } catch (e) {
    if (e instanceof QueryTimeError) return "30d";
    throw e;
  }
}
