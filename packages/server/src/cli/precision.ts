import { Option } from "commander";
import { CliError } from "./common.js";

/**
 * `--precision N`: the decimals of USD a command's tables show (DESIGN.md: reports render USD with the
 * precision asked for). Without it each figure keeps its own: cents, per-call and per-request figures more.
 * --json is exact either way (nano-USD and full USD strings).
 */
export function precisionOption(): Option {
  return new Option(
    "--precision <digits>",
    "decimals of USD in the tables, 0 to 9, rounded half-up (default: cents; per-call and per-request figures 4 or 6)",
  );
}

/** The decimals asked for, or undefined for each figure's own; a usage error otherwise. */
export function precisionFrom(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d$/.test(value)) throw new CliError("--precision must be a whole number from 0 to 9", 2);
  return Number(value);
}
