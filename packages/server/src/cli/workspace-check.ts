import type { Command } from "commander";
import { type Client, connect, type Reply } from "./client.js";
import { CliError, clientOptions, expectOk, type GlobalOpts } from "./common.js";

interface Workspace {
  id: string;
  calls: boolean;
}

/**
 * Before a command reads a workspace's calls: the analytics answer a workspace that nothing names as one
 * with no spend, so a mistyped -w would read as "nothing spent". A workspace no call, key or limit names is
 * a usage error listing the known ones; one that exists but holds no calls yet (a new one, or `default`
 * when the calls went elsewhere) is read as asked, with a note on stderr naming those that hold calls
 * (`reads: "limits"`: a command reading its budgets, agent types or keys, which need no calls, says nothing).
 */
export async function checkWorkspace(
  client: Pick<Client, "request">,
  workspace: string,
  reads: "calls" | "limits" = "calls",
): Promise<void> {
  const reply = await client.request("GET", "/api/workspaces");
  // A server older than this CLI has no such route: it reads the workspace as asked, unchecked.
  if (reply.status === 404 && reply.body?.error?.code === "not_found") return;
  const known: Workspace[] = expectOk(reply, "workspaces").workspaces;
  const asked = known.find((w) => w.id === workspace);
  if (asked?.calls || (asked && reads === "limits")) return;
  if (!asked)
    throw new CliError(
      `workspace ${JSON.stringify(workspace)} does not exist: no call, key or limit names it (-w, --workspace); known workspaces: ${known.map((w) => w.id).join(", ")}`,
      2,
    );
  const withCalls = known.filter((w) => w.calls).map((w) => w.id);
  console.error(
    `note: workspace ${JSON.stringify(workspace)} has no calls recorded; ${withCalls.length ? `workspaces with calls: ${withCalls.join(", ")}` : "no workspace has any"}`,
  );
}

/** The client of a command that reads a workspace's calls, once that workspace is checked. */
export async function connectToRead(
  cmd: Command,
  workspace: string,
  reads: "calls" | "limits" = "calls",
): Promise<Client> {
  const client = await connect(clientOptions(cmd.optsWithGlobals<GlobalOpts>()), "read");
  try {
    await checkWorkspace(client, workspace, reads);
    return client;
  } catch (e) {
    await client.close();
    throw e;
  }
}

/** A GET of a workspace's budgets, agent types or keys, once the workspace is known (a mistyped -w reads none). */
export async function readLimitsOf(
  cmd: Command,
  workspace: string,
  path: string,
  what: string,
): Promise<Reply["body"]> {
  const client = await connectToRead(cmd, workspace, "limits");
  try {
    return expectOk(await client.request("GET", path), what);
  } finally {
    await client.close();
  }
}
