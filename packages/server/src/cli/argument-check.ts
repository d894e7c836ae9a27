import type { Command } from "commander";
import { CliError } from "./common.js";

/**
 * Every command's positional arguments, before its action (a hook of the program, cli.ts): an empty or blank
 * one (a quoted variable that held nothing) names nothing. Sent on, it made a request path the server has
 * no route for (`runs status ""`: 404 "no route GET /api/runs/", exit 1), and an optional one was read as
 * absent (`budgets status ""` listed every budget).
 */
export function refuseEmptyArguments(_program: Command, action: Command): void {
  action.registeredArguments.forEach((arg, i) => {
    const nothing = namesNothing(action.processedArgs[i]);
    if (nothing)
      throw new CliError(
        `${arg.name()} must not be ${nothing} (usage: ${commandPath(action)} ${action.usage()})`,
        2,
      );
  });
}

/** How a value given names nothing (a quoted variable that held nothing, or only spaces); null when it names something. */
export function namesNothing(value: unknown): "empty" | "blank" | null {
  if (typeof value !== "string" || value.trim() !== "") return null;
  return value === "" ? "empty" : "blank";
}

/** "tollgate runs status": the command as typed. */
function commandPath(cmd: Command): string {
  return cmd.parent ? `${commandPath(cmd.parent)} ${cmd.name()}` : cmd.name();
}
