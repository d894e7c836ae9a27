import type { Command } from "commander";
import { ROLES } from "../store/types.js";
import { callApi } from "./call-api.js";
import { CliError, printJson } from "./common.js";
import { renderTable } from "./table.js";

/** The flag each field of a new key came from: the server's refusals name fields. */
const KEY_FLAGS: Record<string, string> = {
  workspace: "-w/--workspace",
  role: "--role",
  label: "--label",
  // Attribution given to a key that takes none (an ingest or read key's): set by any of these.
  defaults: "--customer, --feature, --user, --deployment, --prompt-version or --agent-type",
  "defaults.customer_id": "--customer",
  "defaults.feature": "--feature",
  "defaults.user_id": "--user",
  "defaults.deployment": "--deployment",
  "defaults.prompt_version": "--prompt-version",
  "defaults.agent_type": "--agent-type",
};

export function registerKeys(program: Command): void {
  const keys = program.command("keys").description("manage API keys (stored hashed; a key is shown once)");
  keys
    .command("create")
    .description("create an API key for a workspace and role")
    .requiredOption("-w, --workspace <id>", "workspace the key is bound to (created if new)")
    .requiredOption("-r, --role <role>", `one of ${ROLES.join(", ")}`)
    .option("--label <text>", "what the key is for")
    .option("--customer <id>", "gateway calls with this key are attributed to this customer_id")
    .option("--feature <name>", "… to this feature")
    .option("--user <id>", "… to this user_id")
    .option("--deployment <name>", "… to this deployment (prod, staging, …)")
    .option("--prompt-version <v>", "… to this prompt_version")
    .option("--agent-type <t>", "… to this agent_type")
    .option("--json", 'print {"key": …} as JSON')
    .action(
      async (
        o: {
          workspace: string;
          role: string;
          label?: string;
          json?: boolean;
          customer?: string;
          feature?: string;
          user?: string;
          deployment?: string;
          promptVersion?: string;
          agentType?: string;
        },
        cmd: Command,
      ) => {
        if (!(ROLES as readonly string[]).includes(o.role))
          throw new CliError(`--role must be one of ${ROLES.join(", ")}`, 2);
        const res = await callApi(cmd, "POST", "/api/keys", "keys create", {
          body: {
            workspace: o.workspace,
            role: o.role,
            label: o.label,
            defaults: {
              customer_id: o.customer,
              feature: o.feature,
              user_id: o.user,
              deployment: o.deployment,
              prompt_version: o.promptVersion,
              agent_type: o.agentType,
            },
          },
          flags: KEY_FLAGS,
        });
        if (o.json) printJson(res);
        else
          console.log(
            `${res.key}\n\n${o.role} key for workspace ${res.workspace} (id ${res.id}). It is shown only this once: store it now.`,
          );
      },
    );

  keys
    .command("list")
    .description("list API keys (ids, roles, labels; never the keys themselves)")
    .option("-w, --workspace <id>", "only this workspace (default: all)")
    .option("--json", "print as JSON")
    .action(async (o: { workspace?: string; json?: boolean }, cmd: Command) => {
      const q = o.workspace ? `?workspace=${encodeURIComponent(o.workspace)}` : "";
      const res = await callApi(cmd, "GET", `/api/keys${q}`, "keys list", { checkWorkspace: o.workspace });
      if (o.json) return printJson(res);
      const rows = (
        res.keys as {
          id: string;
          workspace_id: string;
          role: string;
          label: string | null;
          created_at: number;
          revoked_at: number | null;
        }[]
      ).map((k) => [
        k.id,
        k.workspace_id,
        k.role,
        k.label ?? "",
        new Date(k.created_at).toISOString(),
        k.revoked_at ? `revoked ${new Date(k.revoked_at).toISOString()}` : "live",
      ]);
      if (!rows.length) return console.log("no keys (create one with `tollgate keys create`)");
      console.log(renderTable(["id", "workspace", "role", "label", "created", "state"], rows));
    });

  keys
    .command("revoke <id>")
    .description("revoke a key at once (its id is shown by `keys create` and `keys list`)")
    .requiredOption("-w, --workspace <id>", "workspace the key belongs to")
    .option("--json", "print as JSON")
    .action(async (id: string, o: { workspace: string; json?: boolean }, cmd: Command) => {
      const q = `?workspace=${encodeURIComponent(o.workspace)}`;
      const res = await callApi(cmd, "DELETE", `/api/keys/${encodeURIComponent(id)}${q}`, "keys revoke");
      if (o.json) printJson(res);
      else console.log(`revoked key ${id} of workspace ${o.workspace}`);
    });
}
