import { rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import type { RuntimeOptions } from "./config.js";
import { watchPriceBook } from "./pricebook-file.js";
import { openRuntime, type Runtime } from "./runtime.js";

export interface ServerInfo {
  pid: number;
  url: string;
  token: string;
}

export const serverInfoPath = (dataDir: string) => join(dataDir, "server.json");

/** Runs the service until SIGINT/SIGTERM; tells local CLIs where it is via <data-dir>/server.json. */
export async function startServer(
  opts: RuntimeOptions & { port: number; host: string; log: (msg: string) => void },
): Promise<{ runtime: Runtime; url: string; stop: () => Promise<void> }> {
  const runtime = await openRuntime(opts);
  const server = serve({ fetch: runtime.app.fetch, port: opts.port, hostname: opts.host });
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${opts.host === "0.0.0.0" ? "127.0.0.1" : opts.host}:${port}`;
  const info: ServerInfo = { pid: process.pid, url, token: runtime.rootToken };
  writeFileSync(serverInfoPath(opts.dataDir), JSON.stringify(info), { mode: 0o600 });
  const unwatch = opts.pricebookPath
    ? watchPriceBook(opts.pricebookPath, runtime.engine, opts.log)
    : () => {};

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      unwatch();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(serverInfoPath(opts.dataDir), { force: true });
      await runtime.close();
    })());
  return { runtime, url, stop };
}
