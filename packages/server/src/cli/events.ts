import type { Command } from "commander";
import { callApi } from "./call-api.js";
import { printJson } from "./common.js";
import { renderTable } from "./table.js";

export function registerEvents(program: Command): void {
  const events = program.command("events").description("look up recorded calls");
  events
    .command("get <id>")
    .description("one call by its event id (a gateway reply's x-tollgate-event-id): every field it has")
    .option("-w, --workspace <id>", "workspace", "default")
    .option("--json", "print the record as JSON")
    .action(async (id: string, o: { workspace: string; json?: boolean }, cmd: Command) => {
      const q = new URLSearchParams({ workspace: o.workspace });
      const res = await callApi(cmd, "GET", `/api/events/${encodeURIComponent(id)}?${q}`, `event ${id}`);
      if (o.json) return printJson(res);
      // The fields the call has, cost first; absent ones (null, "", [], {}) would only be noise.
      const rows = Object.entries(res.event as Record<string, unknown>)
        .filter(([, v]) => !isEmpty(v))
        .map(([k, v]) => [k, shown(k, v)]);
      console.log(renderTable(["field", "value"], [["cost_usd", res.cost_usd], ...rows]));
    });
}

/** Times as ISO-8601 (UTC) with the epoch ms stored; objects as JSON. */
function shown(field: string, v: unknown): string {
  if ((field === "ts_start" || field === "ts_end") && typeof v === "number")
    return `${new Date(v).toISOString()} (${v})`;
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function isEmpty(v: unknown): boolean {
  if (v === null || v === "") return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === "object" && Object.keys(v as object).length === 0;
}
