import type { Command } from "commander";
import { namesNothing } from "./argument-check.js";
import { CliError, type GlobalOpts } from "./common.js";

/** The global options naming where Tollgate's data, files and backends are, by flag. */
const LOCATIONS: Partial<Record<keyof GlobalOpts, string>> = {
  dataDir: "--data-dir",
  pricebook: "--pricebook",
  limits: "--limits",
  redis: "--redis",
  clickhouse: "--clickhouse",
};

/**
 * Every command's global locations, before its action (a hook of the program, cli.ts): an empty or blank
 * one (a quoted variable that held nothing) names nothing. `--data-dir ""` was the working directory itself,
 * a store made in it; an empty file or backend was read as none given, the environment's included, so a
 * price book's discounts or the shared store were dropped without a word.
 */
export function refuseEmptyLocations(_program: Command, action: Command): void {
  const given = action.optsWithGlobals<GlobalOpts>();
  for (const [option, flag] of Object.entries(LOCATIONS)) {
    const nothing = namesNothing(given[option as keyof GlobalOpts]);
    if (nothing) throw new CliError(`${flag} must not be ${nothing}: leave it out for the default`, 2);
  }
}
