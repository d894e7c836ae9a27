import { APIS, type Api, PricingEngine, UsageError } from "@tollgate/core";
import type { Command } from "commander";
import { loadPriceBook } from "../pricebook-file.js";
import { calcPrice, lookupPrice } from "../prices.js";
import { parseTime, QueryTimeError } from "../query-time.js";
import { CliError, expectOk, type GlobalOpts, printJson, QUERY_FLAGS, runtimeOptions } from "./common.js";
import { formatInt, groupThousands, renderTable } from "./table.js";
import { connectToRead } from "./workspace-check.js";

function engineFor(g: GlobalOpts): PricingEngine {
  const { pricebookPath } = runtimeOptions(g);
  return new PricingEngine(pricebookPath ? loadPriceBook(pricebookPath) : null);
}

function atFrom(text: string | undefined): number {
  if (!text) return Date.now();
  try {
    return parseTime(text);
  } catch (e) {
    if (e instanceof QueryTimeError) throw new CliError(`--at ${e.message}`, 2);
    throw e;
  }
}

export function registerPrices(program: Command): void {
  const prices = program
    .command("prices")
    .description("look up prices, price a usage object, find unpriced models");

  prices
    .command("lookup <model>")
    .description("show the rates Tollgate uses for a model and where they come from")
    .option("--provider <id>", "provider (guessed from the model name if omitted)")
    .option("--at <time>", "price in force at this ISO time (default now)")
    .option("--json", "print as JSON")
    .action((model: string, o: { provider?: string; at?: string; json?: boolean }, cmd: Command) => {
      const res = lookupPrice(engineFor(cmd.optsWithGlobals()), o.provider ?? null, model, atFrom(o.at));
      if (o.json) {
        // The same exit status as the table's: a script asking for JSON learns of the gap the same way.
        printJson(res);
        if (!res.priced) process.exitCode = 1;
        return;
      }
      if (!res.priced)
        throw new CliError(`no price for ${res.provider}:${model}; add it to a price book (--pricebook)`, 1);
      console.log(`${res.provider}:${model} → ${res.price_ref}`);
      console.log(
        renderTable(
          ["rate", "USD"],
          Object.entries(res.rates_per_unit ?? {}).map(([k, v]) => [
            k,
            typeof v === "string" ? v : JSON.stringify(v),
          ]),
        ),
      );
    });

  prices
    .command("calc")
    .description("normalize a provider's raw usage object and price it exactly")
    .requiredOption("--provider <id>", "provider, e.g. openai, anthropic, google, aws, deepseek")
    .requiredOption("--api <api>", APIS.join(" | "))
    .requiredOption("--model <model>", "model id as the provider reports it")
    .requiredOption("--usage <json>", "the provider's raw usage object, as JSON")
    .option("--at <time>", "price at this ISO time (default now)")
    .option("--batch", "priced as a batch-API call")
    .option(
      "--service-tier <tier>",
      "the tier the provider served the call on (flex, priority, …; default: the usage object's service_tier)",
    )
    .option(
      "--web-searches <n>",
      "web searches the call ran (OpenAI Responses list them as output items, outside usage)",
    )
    .option("--file-searches <n>", "file searches the call ran (OpenAI Responses file_search_call items)")
    .option("--json", "print as JSON")
    .action(
      (
        o: {
          provider: string;
          api: string;
          model: string;
          usage: string;
          at?: string;
          batch?: boolean;
          serviceTier?: string;
          webSearches?: string;
          fileSearches?: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        if (!(APIS as readonly string[]).includes(o.api))
          throw new CliError(`--api must be one of ${APIS.join(", ")}`, 2);
        const toolCalls = {
          web_search_requests: countOption("--web-searches", o.webSearches),
          file_search_requests: countOption("--file-searches", o.fileSearches),
        };
        let usageRaw: unknown;
        try {
          usageRaw = JSON.parse(o.usage);
        } catch (e) {
          throw new CliError(`--usage is not valid JSON: ${(e as Error).message}`, 2);
        }
        let res: ReturnType<typeof calcPrice>;
        try {
          res = calcPrice(engineFor(cmd.optsWithGlobals()), {
            provider: o.provider,
            api: o.api as Api,
            model: o.model,
            usageRaw,
            at: atFrom(o.at),
            batch: o.batch ?? false,
            serviceTier: o.serviceTier,
            toolCalls,
          });
        } catch (e) {
          if (e instanceof UsageError) throw new CliError(`--usage: ${e.message}`, 2);
          throw e;
        }
        if (!res.priced) process.exitCode = 1; // with --json too
        if (o.json) return printJson(res);
        // An unpriced call's cost is unknown, not $0.00 (never a silent zero).
        console.log(
          res.priced
            ? `${o.provider}:${o.model} → ${res.price_ref}  total $${res.cost.total_usd}`
            : `${o.provider}:${o.model} → UNPRICED (${res.price_ref})  total unknown: add the model to a price book (--pricebook)`,
        );
        if (!res.priced) return;
        console.log(
          renderTable(
            ["category", "nano_usd"],
            Object.entries(res.cost.by_category)
              .filter(([, v]) => v !== "0")
              .map(([k, v]) => [k, groupThousands(v)]),
          ),
        );
      },
    );

  prices
    .command("unpriced")
    .description("models seen in recorded calls that have no price (coverage gaps)")
    .option("--since <time>", "span back from now or ISO time", "7d")
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--json", "print as JSON")
    .action(async (o: { since: string; workspace: string; json?: boolean }, cmd: Command) => {
      const client = await connectToRead(cmd, o.workspace);
      try {
        const q = new URLSearchParams({ since: o.since, workspace: o.workspace });
        const res = expectOk(
          await client.request("GET", `/api/prices/unpriced?${q}`),
          "prices unpriced",
          QUERY_FLAGS,
        );
        if (o.json) return printJson(res);
        if (!res.models.length) return console.log(`every call since ${o.since} is priced`);
        console.log(
          renderTable(
            ["provider", "model", "calls", "first_seen", "last_seen"],
            res.models.map(
              (m: {
                provider: string;
                model: string;
                calls: number;
                first_seen: number;
                last_seen: number;
              }) => [
                m.provider,
                m.model,
                formatInt(m.calls),
                new Date(m.first_seen).toISOString(),
                new Date(m.last_seen).toISOString(),
              ],
            ),
          ),
        );
      } finally {
        await client.close();
      }
    });
}

/** A count given on the command line: a whole number, or undefined when not given. */
function countOption(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    throw new CliError(`${flag} must be a whole number`, 2);
  return n;
}
