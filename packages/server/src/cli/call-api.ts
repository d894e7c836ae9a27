import type { Command } from "commander";
import { connect, type Reply } from "./client.js";
import { clientOptions, expectOk, type GlobalOpts } from "./common.js";
import { connectToRead } from "./workspace-check.js";

export interface ApiCall {
  body?: unknown;
  /** The flag each field of the body came from (expectOk). */
  flags?: Record<string, string>;
  /**
   * A workspace to check first (workspace-check.ts), for a read (GET) of its budgets, agent types or keys:
   * it would answer none for a mistyped -w.
   */
  checkWorkspace?: string;
}

/**
 * Runs one API request as the local admin and returns its body (or throws the server's message): a read
 * of a workspace (`checkWorkspace`) connects as connectToRead does, once that workspace is checked.
 */
export async function callApi(
  cmd: Command,
  method: string,
  path: string,
  what: string,
  call: ApiCall = {},
): Promise<Reply["body"]> {
  const client =
    call.checkWorkspace === undefined
      ? await connect(clientOptions(cmd.optsWithGlobals<GlobalOpts>()), method === "GET" ? "read" : "write")
      : await connectToRead(cmd, call.checkWorkspace, "limits");
  try {
    return expectOk(await client.request(method, path, call.body), what, call.flags);
  } finally {
    await client.close();
  }
}
