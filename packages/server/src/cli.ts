import { readFileSync } from "node:fs";
import { Command } from "commander";
import { BackendUnreachableError, BackendUrlError } from "./backend-error.js";
import { refuseEmptyArguments } from "./cli/argument-check.js";
import { CliError } from "./cli/common.js";
import { registerDemo } from "./cli/demo.js";
import { registerEvents } from "./cli/events.js";
import { registerExport } from "./cli/export.js";
import { registerIngest } from "./cli/ingest.js";
import { registerKeys } from "./cli/keys.js";
import { registerLimits } from "./cli/limits.js";
import { refuseEmptyLocations } from "./cli/location-check.js";
import { registerPrices } from "./cli/prices.js";
import { DEFAULT_TIMEOUT_SECONDS } from "./cli/request-timeout.js";
import { PURGE_SECONDS, registerPurge, registerRollups } from "./cli/rollups.js";
import { registerServe } from "./cli/serve.js";
import { registerSpend } from "./cli/spend.js";
import { refuseEmptyWorkspace } from "./cli/workspace-check.js";
import { DataDirLockedError } from "./data-dir-lock.js";
import { ConfigFileError } from "./yaml-file.js";

/** The package's version, read from its package.json (what npm installed). */
const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

const program = new Command("tollgate")
  .description("Tollgate: exact LLM cost attribution and spend control")
  .version(version, "-V, --version", "print the version")
  .option("--data-dir <dir>", "data directory (env TOLLGATE_DATA_DIR)", undefined)
  .option(
    "--pricebook <file>",
    "price book YAML/JSON: custom models, discounts, aliases (env TOLLGATE_PRICEBOOK)",
  )
  .option("--limits <file>", "budgets, rate limits and agent ceilings, YAML/JSON (env TOLLGATE_LIMITS)")
  .option(
    "--redis <url>",
    "Redis for limits shared by many gateways (env TOLLGATE_REDIS_URL); else in-memory",
  )
  .option(
    "--clickhouse <url>",
    "ClickHouse event store shared by replicas, http://host:8123/<database> (env TOLLGATE_CLICKHOUSE_URL); else the data dir's DuckDB file",
  )
  .option(
    "--timeout <seconds>",
    // purge's own default said too: its answer comes only once the purge is done.
    `how long a running server may stay silent on a request (no answer, no more of it) before the command gives up (env TOLLGATE_TIMEOUT; default ${DEFAULT_TIMEOUT_SECONDS}, purge ${PURGE_SECONDS})`,
  )
  .showHelpAfterError()
  // Commander's own parse errors (an unknown option or command, a missing argument or value) are usage
  // errors, exit 2 as the commands' own checks are; it exits 1 for them. Help and --version keep 0.
  // Set before the commands are added: each copies it.
  .exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : 2))
  .hook("preAction", refuseEmptyWorkspace)
  .hook("preAction", refuseEmptyArguments)
  .hook("preAction", refuseEmptyLocations);

registerServe(program);
registerIngest(program);
registerDemo(program);
registerKeys(program);
registerPrices(program);
registerSpend(program);
registerEvents(program);
registerLimits(program);
registerRollups(program);
registerPurge(program);
registerExport(program);

program.parseAsync().catch((e: unknown) => {
  if (
    e instanceof CliError ||
    e instanceof DataDirLockedError ||
    e instanceof ConfigFileError ||
    e instanceof BackendUnreachableError ||
    e instanceof BackendUrlError
  ) {
    console.error(`error: ${e.message}`);
    // A broken --limits or --pricebook file, or a backend URL that is none, is a usage error, as a bad flag is.
    const usage = e instanceof ConfigFileError || e instanceof BackendUrlError;
    process.exit(e instanceof CliError ? e.exitCode : usage ? 2 : 1);
  }
  console.error(e);
  process.exit(1);
});
