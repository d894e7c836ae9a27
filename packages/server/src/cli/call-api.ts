import type { Command } from "commander";
import { connect, type Reply } from "./client.js";
import { clientOptions, expectOk, type GlobalOpts } from "./common.js";
import { checkWorkspace } from "./workspace-check.js";

export interface ApiCall {
  body?: unknown;
  /** The flag each field of the body came from (expectOk). */
  flags?: Record<string, string>;
  /**
   * A workspace to check first (workspace-check.ts): a read of its budgets, agent types or keys would
   * answer none for a mistyped -w.
   */
  checkWorkspace?: string;
}

/** Runs one API request as the local admin and returns its body (or throws the server's message). */
export async function callApi(
  cmd: Command,
  method: string,
  path: string,
  what: string,
  call: ApiCall = {},
): Promise<Reply["body"]> {
  const client = await connect(
    clientOptions(cmd.optsWithGlobals<GlobalOpts>()),
    method === "GET" ? "read" : "write",
  );
  try {
    if (call.checkWorkspace !== undefined) await checkWorkspace(client, call.checkWorkspace, "limits");
    return expectOk(await client.request(method, path, call.body), what, call.flags);
  } finally {
    await client.close();
  }
}
