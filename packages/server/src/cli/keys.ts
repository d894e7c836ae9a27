import type { Command } from "commander";
import { ROLES } from "../store/types.js";
import { connect } from "./client.js";
import { CliError, expectOk, type GlobalOpts, printJson, runtimeOptions } from "./common.js";

export function registerKeys(program: Command): void {
  const keys = program.command("keys").description("manage API keys (stored hashed; a key is shown once)");
  keys
    .command("create")
    .description("create an API key for a workspace and role")
    .requiredOption("-w, --workspace <id>", "workspace the key is bound to (created if new)")
    .requiredOption("-r, --role <role>", `one of ${ROLES.join(", ")}`)
    .option("--label <text>", "what the key is for")
    .option("--json", 'print {"key": …} as JSON')
    .action(async (o: { workspace: string; role: string; label?: string; json?: boolean }, cmd: Command) => {
      if (!(ROLES as readonly string[]).includes(o.role))
        throw new CliError(`--role must be one of ${ROLES.join(", ")}`, 2);
      const client = await connect(runtimeOptions(cmd.optsWithGlobals<GlobalOpts>()));
      try {
        const res = expectOk(
          await client.request("POST", "/api/keys", { workspace: o.workspace, role: o.role, label: o.label }),
          "keys create",
        );
        if (o.json) printJson(res);
        else
          console.log(
            `${res.key}\n\n${o.role} key for workspace ${res.workspace} (id ${res.id}). It is shown only this once: store it now.`,
          );
      } finally {
        await client.close();
      }
    });
}
