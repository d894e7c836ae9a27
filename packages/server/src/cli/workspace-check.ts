import type { Command } from "commander";
import { type Client, connect, type Reply } from "./client.js";
import { CliError, clientOptions, expectOk, type GlobalOpts } from "./common.js";

interface Workspace {
  id: string;
  calls: boolean;
}

/** Which a command reads: a workspace's calls, or its budgets, agent types or keys (which need no calls). */
export type Reads = "calls" | "limits";

/**
 * Every command's -w, before its action (a hook of the program, cli.ts): an empty one is a usage error. It
 * names no workspace, and each command would read it as its own "none": the key's own (`default`) for
 * `keys create` or `ingest`, every one for `keys list`, one that does not exist for the reading commands.
 * A blank one (only whitespace, a quoted variable that held a space) is one too: `demo` and `agents set`
 * wrote into it; and one with spaces around a name, which names another workspace than that one. Nothing
 * stricter: workspaces made by ingest, OTLP or a limits file may have names `keys create` would refuse.
 */
export function refuseEmptyWorkspace(_program: Command, action: Command): void {
  const { workspace } = action.opts();
  if (workspace === "") throw new CliError("-w/--workspace must not be empty", 2);
  if (typeof workspace !== "string") return;
  const trimmed = workspace.trim();
  if (trimmed === "") throw new CliError("-w/--workspace must not be blank", 2);
  // Spaces around a name (a quoted variable, a pasted value) would name another workspace than the one meant.
  if (trimmed !== workspace)
    throw new CliError(
      `-w/--workspace ${JSON.stringify(workspace)} has spaces around it: did you mean ${JSON.stringify(trimmed)}?`,
      2,
    );
}

/** The 404 of a route the server lacks (a server older than this CLI), not of a workspace it lacks. */
const noSuchRoute = (reply: Reply) => reply.status === 404 && reply.body?.error?.code === "not_found";

/**
 * Before a command reads a workspace's calls: the analytics answer a workspace that nothing names as one
 * with no spend, so a mistyped -w would read as "nothing spent". A workspace no call, key or limit names is
 * a usage error listing the known ones; one that exists but holds no calls yet (a new one, or `default`
 * when the calls went elsewhere) is read as asked, with a note on stderr naming those that hold calls
 * (`reads: "limits"`: a command reading its budgets, agent types or keys, which need no calls, says nothing).
 * Only the workspace asked about is fetched: the list of every one only for that error or that note.
 */
export async function checkWorkspace(
  client: Pick<Client, "request">,
  workspace: string,
  reads: Reads = "calls",
): Promise<void> {
  let listed: Promise<Workspace[] | null> | undefined;
  const known = () => (listed ??= knownWorkspaces(client));
  const reply = await client.request("GET", `/api/workspaces/${encodeURIComponent(workspace)}`);
  let asked: Workspace | null;
  if (noSuchRoute(reply)) {
    // A server older than GET /api/workspaces/:id: its list tells; older still, none: read as asked, unchecked.
    const all = await known();
    if (!all) return;
    asked = all.find((w) => w.id === workspace) ?? null;
  } else if (reply.status === 404 && reply.body?.error?.code === "workspace_not_found") asked = null;
  else asked = expectOk(reply, "workspace");
  if (asked?.calls || (asked && reads === "limits")) return;
  const all = (await known()) ?? [];
  if (!asked)
    throw new CliError(
      `workspace ${JSON.stringify(workspace)} does not exist: no call, key or limit names it (-w, --workspace); known workspaces: ${all.map((w) => w.id).join(", ")}`,
      2,
    );
  const withCalls = all.filter((w) => w.calls).map((w) => w.id);
  console.error(
    `note: workspace ${JSON.stringify(workspace)} has no calls recorded; ${withCalls.length ? `workspaces with calls: ${withCalls.join(", ")}` : "no workspace has any"}`,
  );
}

/** The workspaces the server knows (to name them), or null from a server with no /api/workspaces. */
async function knownWorkspaces(client: Pick<Client, "request">): Promise<Workspace[] | null> {
  const reply = await client.request("GET", "/api/workspaces");
  return noSuchRoute(reply) ? null : expectOk(reply, "workspaces").workspaces;
}

/** The client of a command that reads a workspace's calls, once that workspace is checked. */
export async function connectToRead(
  cmd: Command,
  workspace: string,
  reads: Reads = "calls",
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
