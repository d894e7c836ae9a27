import type { Command } from "commander";
import { generateDemo } from "../demo/generate.js";
import type { Client } from "./client.js";
import { connect } from "./client.js";
import { CliError, clientOptions, expectOk, type GlobalOpts, printJson } from "./common.js";
import { progressBar } from "./progress.js";
import { formatInt } from "./table.js";

export interface DemoSummary {
  days: number;
  events: number;
  accepted: number;
  duplicates: number;
  rejected: number;
}

/** Generates demo traffic and sends it through the ingest API in batches (so it is priced like real data). */
export async function runDemo(
  client: Pick<Client, "request">,
  opts: { days: number; workspace: string; callsPerDay?: number; seed?: number; progress: boolean },
): Promise<DemoSummary> {
  const summary: DemoSummary = { days: opts.days, events: 0, accepted: 0, duplicates: 0, rejected: 0 };
  const bar = opts.progress
    ? progressBar("demo [{bar}] {value}/{total} days | {events} events | {eta_formatted} left")
    : null;
  bar?.start(opts.days, 0, { events: 0 });
  let batch: Record<string, unknown>[] = [];
  let lastDay = -1;
  let daysDone = 0;
  const flush = async () => {
    if (!batch.length) return;
    const res = expectOk(
      await client.request("POST", `/v1/events?workspace=${encodeURIComponent(opts.workspace)}`, batch),
      "demo ingest",
    );
    summary.accepted += res.accepted;
    summary.duplicates += res.duplicates;
    summary.rejected += res.rejected;
    if (res.rejected)
      throw new Error(
        `demo data rejected: ${JSON.stringify(res.results.find((r: { status: string }) => r.status === "rejected"))}`,
      );
    batch = [];
  };
  try {
    for (const rec of generateDemo({ days: opts.days, callsPerDay: opts.callsPerDay, seed: opts.seed })) {
      const day = Math.floor((rec.ts_start as number) / 86_400_000);
      if (day !== lastDay) {
        if (lastDay !== -1) daysDone++;
        lastDay = day;
        bar?.update(Math.min(daysDone, opts.days), { events: formatInt(summary.events) });
      }
      batch.push(rec);
      summary.events++;
      if (batch.length >= 5000) await flush();
    }
    await flush();
    bar?.update(opts.days, { events: formatInt(summary.events) });
  } finally {
    bar?.stop();
  }
  return summary;
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      "load realistic demo data (data_mode=demo): skewed users/customers, a prompt regression, agent runs, a retry storm",
    )
    .option("--days <n>", "days of history, ending today", "90")
    .option("--calls-per-day <n>", "baseline calls per day", "1500")
    .option("--seed <n>", "random seed (same seed = same events, so re-running is idempotent)", "42")
    .option("-w, --workspace <id>", "workspace to load into", "default")
    .option("--json", "print the summary as JSON")
    .action(
      async (
        o: { days: string; callsPerDay: string; seed: string; workspace: string; json?: boolean },
        cmd: Command,
      ) => {
        const days = demoDays(o.days, "--days");
        const callsPerDay = wholeNumber(o.callsPerDay, "--calls-per-day", 1, 1_000_000);
        const seed = wholeNumber(o.seed, "--seed", 0, Number.MAX_SAFE_INTEGER);
        const client = await connect(clientOptions(cmd.optsWithGlobals<GlobalOpts>()));
        try {
          const s = await runDemo(client, {
            days,
            workspace: o.workspace,
            callsPerDay,
            seed,
            progress: !o.json,
          });
          if (o.json) printJson(s);
          else
            console.log(
              `demo: ${formatInt(s.events)} events over ${s.days} days → ${formatInt(s.accepted)} new, ${formatInt(s.duplicates)} already there\n` +
                `next: ${demoNextStep(days, cmd.optsWithGlobals<GlobalOpts>(), o.workspace)}`,
            );
        } finally {
          await client.close();
        }
      },
    );
}

/**
 * The command to try after loading the demo. It names the data dir, ClickHouse and workspace given, so
 * that, run as printed, it reads the demo's calls rather than ./.tollgate's or workspace default's.
 */
export function demoNextStep(
  days: number,
  where: Pick<GlobalOpts, "dataDir" | "clickhouse">,
  workspace: string,
): string {
  const dataDir = where.dataDir === undefined ? "" : `--data-dir ${shellWord(where.dataDir)} `;
  // A ClickHouse holds the calls wherever the data dir is: without it, the step would read the data dir's.
  const store =
    where.clickhouse === undefined ? "" : `--clickhouse ${shellWord(shownUrl(where.clickhouse))} `;
  const ws = workspace === "default" ? "" : ` -w ${shellWord(workspace)}`;
  return `npx tollgate ${dataDir}${store}spend --by feature --from ${days}d${ws}`;
}

/** A URL as it may be printed or logged (serve --demo logs its next step): its password, if any, hidden. */
function shownUrl(url: string): string {
  const u = URL.canParse(url) ? new URL(url) : null;
  if (!u?.password) return url;
  u.password = "***";
  return u.href;
}

/** A word a shell reads as written: single-quoted unless it is plain. */
const shellWord = (s: string) => (/^[\w./@:+-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`);

/** A whole number given on the command line, in min..max, or a usage error naming the flag (exit 2). */
function wholeNumber(text: string, flag: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max)) throw new CliError(`${flag} must be a whole number from ${min} to ${max}`, 2);
  return n;
}

/** Days of demo history (`demo --days`, `serve --demo`): 1 to 3650. */
export function demoDays(text: string, flag: string): number {
  return wholeNumber(text, flag, 1, 3650);
}
