import { existsSync, readFileSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import type { RuntimeOptions } from "../config.js";
import { openRuntime, type Runtime } from "../runtime.js";
import { type ServerInfo, serverInfoPath } from "../serve.js";
import { CliError } from "./common.js";
import { type ApiRequest, fetchUntilSilent } from "./request-timeout.js";
import { writableDataDir } from "./writable-data-dir.js";

export interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: each command reads the fields of its own endpoint's reply
  body: any;
}

/** Where a command finds Tollgate, and how long a running server may stay silent on a request. */
export interface ClientOptions extends RuntimeOptions {
  requestTimeoutMs: number;
}

/** How a CLI command talks to Tollgate: the running server of the data dir, or the data dir directly. */
export interface Client {
  mode: "server" | "local";
  request(method: string, path: string, body?: unknown): Promise<Reply>;
  close(): Promise<void>;
}

function runningServer(dataDir: string): ServerInfo | null {
  const path = serverInfoPath(dataDir);
  if (!existsSync(path)) return null;
  try {
    const info = JSON.parse(readFileSync(path, "utf8")) as ServerInfo;
    process.kill(info.pid, 0); // throws when the process is gone (a stale file after kill -9)
    return info;
  } catch {
    return null;
  }
}

/** A request body that already is JSON text: bulk loads skip a parse/serialize round trip. */
export class RawJson {
  constructor(readonly text: string) {}
}

/**
 * Same HTTP API either way: through the running server (its data dir is locked by it), or in-process
 * via the app's own request handler when no server runs. A command that only reads (`use: "read"`) is
 * refused a data dir that does not exist, rather than creating it and reading nothing from it: a mistyped
 * --data-dir, or a command run elsewhere than the server's ./.tollgate, would report no spend at all.
 */
export async function connect(opts: ClientOptions, use: "read" | "write" = "write"): Promise<Client> {
  const info = runningServer(opts.dataDir);
  if (info) {
    const seconds = opts.requestTimeoutMs / 1000;
    const silent = () =>
      new CliError(
        `the Tollgate server of ${opts.dataDir} at ${info.url} (pid ${info.pid}) did not answer within ${seconds} s: ` +
          `is \`tollgate serve\` running and healthy? For a long query, raise --timeout (seconds; now ${seconds}).`,
      );
    const send = async (path: string, init: ApiRequest) => {
      try {
        const res = await fetchUntilSilent(info.url + path, init, opts.requestTimeoutMs, silent);
        // The server there does not know the token its data dir's file holds: it is another's.
        if (res.status === 401)
          throw new CliError(
            `the server at ${info.url} refused the local-admin token of ${serverInfoPath(opts.dataDir)}: it is not the server of ${opts.dataDir} ` +
              `(that file outlived its server, pid ${info.pid}, and another took the port?). Stop the server at ${info.url}, or delete that file and run the command again.`,
          );
        return res;
      } catch (e) {
        if (e instanceof CliError) throw e; // silent()'s: it says what to do
        // Its process is there but its port does not answer (it is shutting down, or after a kill -9 the
        // pid went to another process): say which server and what to do, not a TypeError with a stack.
        const why = ((e as Error).cause as Error | undefined)?.message ?? (e as Error).message;
        throw new CliError(
          `cannot reach the Tollgate server of ${opts.dataDir} at ${info.url} (pid ${info.pid}, from ${serverInfoPath(opts.dataDir)}): ${why}. ` +
            "If that server is no longer running, delete that file and run the command again (it then opens the data dir itself).",
        );
      }
    };
    return { mode: "server", ...clientOver(send, info.token), close: async () => {} };
  }
  const existed = existsSync(opts.dataDir);
  // Read commands open the store to write too (DuckDB takes its file read-write; keys and spooled calls are
  // kept): a read-only data dir is said as such, not met as DuckDB's IO error. One to make is made below.
  if (existed || use === "write") writableDataDir(opts.dataDir);
  // A one-shot CLI proxies nothing: the in-process store spends less CPU per record on bulk loads.
  const noDataDir = () =>
    new CliError(
      `no Tollgate data dir at ${resolve(opts.dataDir)}: nothing is recorded there and no server runs for it. ` +
        "Name the one `tollgate serve` uses with --data-dir or TOLLGATE_DATA_DIR.",
      2,
    );
  let rt: Runtime;
  try {
    rt = await openRuntime({ ...opts, storeThread: opts.storeThread ?? false });
  } catch (e) {
    if (use === "read" && !existed) {
      // One a read would have made and could not (its parent read-only, say): it is not there, that is all.
      if (!existsSync(opts.dataDir)) throw noDataDir();
      // Made, then the open failed (a bad --limits file): removed, or the next read would read it as no spend.
      rmSync(opts.dataDir, { recursive: true, force: true });
    }
    throw e;
  }
  // Checked once open, so a bad --limits file or an unreachable Redis is said first, as without this check;
  // the data dir opening made is removed. A ClickHouse store holds the calls wherever the data dir is.
  if (use === "read" && !existed && !rt.store.shared) {
    await rt.close();
    rmSync(opts.dataDir, { recursive: true, force: true });
    throw noDataDir();
  }
  return { mode: "local", ...appClient(rt), close: () => rt.close() };
}

/** Calls the app's own request handler in-process, as the local admin. */
export function appClient(rt: Pick<Runtime, "app" | "rootToken">): Pick<Client, "request"> {
  return clientOver((path, init) => Promise.resolve(rt.app.request(path, init)), rt.rootToken);
}

function clientOver(
  send: (path: string, init: ApiRequest) => Promise<Response>,
  token: string,
): Pick<Client, "request"> {
  return {
    async request(method, path, body) {
      const res = await send(path, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : body instanceof RawJson ? body.text : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    },
  };
}
