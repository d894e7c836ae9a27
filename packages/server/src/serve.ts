import { renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { getRequestListener } from "@hono/node-server";
import type { RuntimeOptions } from "./config.js";
import { onceClosed } from "./gateway/client-watch.js";
import {
  describeEgress,
  type GatewayConfig,
  gatewayConfigFromEnv,
  MAX_HEADER_BYTES,
} from "./gateway/config.js";
import { Gateway } from "./gateway/proxy.js";
import { drainBody } from "./gateway/request-body.js";
import { type RunningJobs, serverJobs, startJobs } from "./jobs/index.js";
import { rawFloor } from "./limits/raw-floor.js";
import { watchPriceBook } from "./pricebook-file.js";
import { type ServerRole, servesRoutes } from "./roles.js";
import { openRuntime, type Runtime } from "./runtime.js";
import { watchConfigFile } from "./yaml-file.js";

export interface ServerInfo {
  pid: number;
  url: string;
  token: string;
  role?: ServerRole;
}

const SHUTDOWN_GRACE_MS = 10_000;

export const serverInfoPath = (dataDir: string) => join(dataDir, "server.json");

/**
 * Runs the service until SIGINT/SIGTERM: the gateway paths go straight to the proxy (plain node:http,
 * no framework on the hot path), everything else to the API app. Local CLIs find it via
 * <data-dir>/server.json.
 *
 * `role` (roles.ts) picks what this process serves: the API app answers `not_served_by_role` for the
 * route groups it leaves out (the gateway paths too, when the role has no gateway), and only `worker` and
 * `all` run the scheduled jobs (jobs/index.ts), under the job lease.
 */
export async function startServer(
  opts: RuntimeOptions & {
    port: number;
    host: string;
    log: (msg: string) => void;
    gateway?: Partial<GatewayConfig>;
    upstreamsPath?: string | null;
    /** The gateway's settings read already (the CLI reads them first, to report a bad one as usage). */
    gatewayConfig?: GatewayConfig;
    /** Job lease ttl when the lease is in Redis (default TOLLGATE_JOB_LEASE_TTL_MS, else 15 s). */
    jobLeaseTtlMs?: number;
  },
): Promise<{
  runtime: Runtime;
  url: string;
  role: ServerRole;
  jobs: RunningJobs | null;
  /** Stops the service: calls in flight get a grace period to finish, which a second call cuts short. */
  stop: () => Promise<void>;
}> {
  const role = opts.role ?? "all";
  // Read first: a bad setting is reported before the store (and its data-dir lock) is opened.
  const gatewayConfig = servesRoutes(role, "gateway")
    ? (opts.gatewayConfig ?? gatewayConfigFromEnv(opts.gateway, opts.upstreamsPath))
    : null;
  if (gatewayConfig?.egressProxy) opts.log(describeEgress(gatewayConfig.egressProxy));
  const runtime = await openRuntime({ ...opts, role });
  const gateway = gatewayConfig
    ? new Gateway({
        config: gatewayConfig,
        engine: runtime.engine,
        recorder: runtime.recorder,
        keys: runtime.keys,
        metrics: runtime.metrics,
        guard: runtime.guard,
        store: runtime.store,
        batches: runtime.batches,
        log: opts.log,
      })
    : null;
  const api = getRequestListener(async (request, env) => {
    const res = await runtime.app.fetch(request, env);
    // Answered without (all of) its body, a refusal such as a 413 over the size cap: kept alive only if the
    // rest comes. Node's adapter would otherwise answer keep-alive, then drop the connection after 500 ms.
    if (!(await drainBody(env.incoming as IncomingMessage))) res.headers.set("connection", "close");
    return res;
  });
  let active = 0;
  // Node's 5-minute requestTimeout would cut off a big upload on a slow link (the gateway streams it
  // upstream as it comes); headersTimeout (60 s) still bounds a request whose headers never end.
  const server = createServer(
    { keepAliveTimeout: 65_000, requestTimeout: 3_600_000, maxHeaderSize: MAX_HEADER_BYTES },
    (req, res) => {
      active++;
      onceClosed(res, () => active--);
      if (!gateway?.handle(req, res)) void api(req, res);
    },
  );
  // WebSocket sessions (OpenAI Realtime) on gateway paths; any other upgrade is refused.
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node takes its own error listener off an upgraded socket: without one, a client that resets the
    // connection before its handshake is answered (the upstream's comes first) would crash the process.
    socket.on("error", () => socket.destroy());
    if (!gateway?.upgrade(req, socket, head))
      socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
  });
  server.listen(opts.port, opts.host);
  let jobs: RunningJobs | null;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
    jobs = await startJobs({
      role,
      redisUrl: opts.redisUrl ?? null,
      jobs: serverJobs({
        store: runtime.store,
        log: opts.log,
        rawFloor: (now) => rawFloor(runtime.guard.registry, now),
      }),
      log: opts.log,
      metrics: runtime.metrics.registry,
      readiness: runtime.readiness,
      leaseTtlMs: opts.jobLeaseTtlMs,
    });
  } catch (e) {
    // e.g. EADDRINUSE, a bad retention setting: release the store (and its data-dir lock) before reporting.
    if (server.listening) await new Promise((r) => server.close(r));
    await gateway?.close();
    await runtime.close();
    throw e;
  }
  const { port } = server.address() as AddressInfo;
  const url = `http://${opts.host === "0.0.0.0" ? "127.0.0.1" : opts.host}:${port}`;
  const info: ServerInfo = { pid: process.pid, url, token: runtime.rootToken, role };
  // Written aside and renamed: local CLIs (and tests) polling for the file never read it half-written.
  const infoPath = serverInfoPath(opts.dataDir);
  writeFileSync(`${infoPath}.tmp`, JSON.stringify(info), { mode: 0o600 });
  renameSync(`${infoPath}.tmp`, infoPath);
  const unwatchPrices = opts.pricebookPath
    ? watchPriceBook(opts.pricebookPath, runtime.engine, opts.log)
    : () => {};
  const limitsPath = opts.limitsPath;
  const unwatchLimits = limitsPath
    ? watchConfigFile(limitsPath, () => {
        try {
          const { entries, newBudgets } = runtime.guard.registry.reloadFile();
          for (const b of newBudgets) void runtime.guard.budgetAdded(b.workspace, b.id);
          opts.log(`limits file reloaded: ${entries} entries`);
        } catch (e) {
          opts.log(`limits file NOT reloaded, keeping the previous limits: ${(e as Error).message}`);
        }
      })
    : () => {};
  const unwatch = () => {
    unwatchPrices();
    unwatchLimits();
  };

  let stopping: Promise<void> | null = null;
  let hurried = false;
  /** Clients' connections are dropped: what still runs waits on the upstream alone (a whole reply). */
  let dropped = false;
  // Called again while it stops (a second Ctrl-C), it cuts the calls in flight short rather than waiting for
  // them: each is still recorded, as any call its client leaves is, and every record is stored or spooled.
  const stop = () => {
    if (stopping) {
      hurried = true;
      if (dropped) gateway?.hurry();
      return stopping;
    }
    stopping = (async () => {
      unwatch();
      await jobs?.stop(); // running jobs finish (their signal aborts), then the lease is released
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      gateway?.endWaits(); // calls waiting on their run's calls in flight are answered (429) now
      await gateway?.closeSockets();
      // Let calls in flight finish (streams included), then drop every socket: a connection that
      // never sent a request (fetch opens one after an aborted stream) would otherwise hold the
      // close for Node's 60 s headersTimeout.
      const deadline = Date.now() + SHUTDOWN_GRACE_MS;
      while (active > 0 && !hurried && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      server.closeAllConnections();
      dropped = true;
      // A model call whose reply is held whole runs on without its client (it is billed): hurried, it is
      // cut too, or the stop would wait for its upstream (up to the upstream timeout).
      if (hurried) gateway?.hurry();
      await closed;
      await gateway?.close();
      rmSync(serverInfoPath(opts.dataDir), { force: true });
      await runtime.close();
    })();
    return stopping;
  };
  return { runtime, url, role, jobs, stop };
}
