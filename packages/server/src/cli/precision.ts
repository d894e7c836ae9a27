import { Option } from "commander";
import { CliError } from "./common.js";

/**
 * `--precision N`: the decimals of USD a command shows (DESIGN.md: reports render USD with the precision
 * asked for). Without it each figure keeps its own, `defaults` as the help says them: cents, unless the
 * command has figures of more (a rollup's per-call and per-request ones). --json is exact either way
 * (nano-USD and full USD strings).
 */
export function precisionOption(defaults = "cents"): Option {
  return new Option(
    "--precision <digits>",
    `decimals of USD shown, 0 to 9, rounded half-up (default: ${defaults})`,
  );
}

/** The decimals asked for, or undefined for each figure's own; a usage error otherwise. */
export function precisionFrom(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d$/.test(value)) throw new CliError("--precision must be a whole number from 0 to 9", 2);
  return Number(value);
}
