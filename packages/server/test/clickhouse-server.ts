import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CLICKHOUSE_INSTALL_HINT,
  type ClickHouseConfigFiles,
  clickHouseAnswers,
  clickHouseServerCommand,
  findClickHouseServer,
  tailFile,
  writeClickHouseConfig,
} from "../../../scripts/services/clickhouse-config.mjs";
import { type RunningZooKeeper, startZooKeeper } from "../../../scripts/services/zookeeper.mjs";

/** The `remote_servers` cluster a multi-shard test ClickHouse defines: `Distributed(tollgate_test, db, t, rand())`. */
export const TEST_CLUSTER = "tollgate_test";

export interface TestClickHouse {
  /** HTTP URL of the first (or only) server, e.g. http://127.0.0.1:41234 */
  url: string;
  /** HTTP URL of each shard's server, in shard order (urls[0] === url). */
  urls: string[];
  /** TCP (native protocol) port of each shard's server. */
  tcpPorts: number[];
  /** TEST_CLUSTER when started with shards > 1, else null. */
  cluster: string | null;
  /** host:port of the ZooKeeper the servers use (started with `zookeeper: true`), else null. */
  zookeeper: string | null;
  /** Kills the servers (and the ZooKeeper) and deletes their temp dir. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 20_000;
const START_ATTEMPTS = 3;

/** `n` distinct free loopback ports (all held open until every one is picked, so none repeats). */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => resolve());
      });
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

interface Running {
  url: string;
  tcpPort: number;
  proc: ChildProcess;
  files: ClickHouseConfigFiles;
  stderr: () => string;
}

function kill(proc: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once("exit", () => resolve());
    proc.kill("SIGKILL");
  });
}

function exited(proc: ChildProcess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

function spawnServer(
  dir: string,
  files: ClickHouseConfigFiles,
  node: { httpPort: number; tcpPort: number },
): Running {
  const server = findClickHouseServer()!;
  const { command, args } = clickHouseServerCommand(server, files.configPath);
  const proc = spawn(command, args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (d: string) => {
    stderr = (stderr + d).slice(-8000);
  });
  proc.on("error", (e) => {
    stderr += `\nspawn ${command}: ${e.message}`;
  });
  return {
    url: `http://127.0.0.1:${node.httpPort}`,
    tcpPort: node.tcpPort,
    proc,
    files,
    stderr: () => stderr,
  };
}

function logTail(r: Running): string {
  return (
    tailFile(r.files.errorLog, 15) ||
    r.stderr().trim().split("\n").slice(-15).join("\n") ||
    "(the server wrote nothing to its error log or stderr)"
  );
}

/** One attempt at starting all shards on fresh ports; resolves with the running servers or rejects. */
async function startOnce(
  root: string,
  shards: number,
  attempt: number,
  zookeeper: RunningZooKeeper | null,
): Promise<Running[]> {
  const ports = await freePorts(shards * 3);
  const nodes = Array.from({ length: shards }, (_, i) => ({
    dir: join(root, `try${attempt}-shard${i + 1}`),
    httpPort: ports[i * 3]!,
    tcpPort: ports[i * 3 + 1]!,
    interserverPort: ports[i * 3 + 2]!,
  }));
  const cluster =
    shards > 1 ? { name: TEST_CLUSTER, shards: nodes.map((n) => ({ tcpPort: n.tcpPort })) } : null;
  const running = nodes.map((n, i) => {
    mkdirSync(n.dir, { recursive: true });
    const zk = zookeeper && {
      zookeeper: { host: zookeeper.host, port: zookeeper.port },
      macros: { shard: String(i + 1), replica: `replica${i + 1}` },
    };
    return spawnServer(n.dir, writeClickHouseConfig({ ...n, cluster, ...zk }), n);
  });
  try {
    await Promise.all(
      running.map(async (r, i) => {
        const url = r.url;
        const deadline = Date.now() + START_TIMEOUT_MS;
        for (;;) {
          if (await clickHouseAnswers(url, 500)) return;
          if (exited(r.proc))
            throw new Error(
              `clickhouse-server (shard ${i + 1}, ${url}) exited with ${r.proc.exitCode ?? r.proc.signalCode} during startup:\n${logTail(r)}`,
            );
          if (Date.now() > deadline)
            throw new Error(
              `clickhouse-server (shard ${i + 1}) did not answer SELECT 1 on ${url} within ${START_TIMEOUT_MS / 1000} s:\n${logTail(r)}`,
            );
          await new Promise((res) => setTimeout(res, 50));
        }
      }),
    );
  } catch (e) {
    await Promise.all(running.map((r) => kill(r.proc)));
    throw e;
  }
  return running;
}

/**
 * Real clickhouse-server process(es) on free 127.0.0.1 ports, data in a fresh temp dir, configured from
 * scripts/services/clickhouse (works on Debian's 18.16 and modern ClickHouse). With `shards: N > 1`, N servers
 * whose configs define the cluster TEST_CLUSTER (one replica per shard). With `zookeeper: true`, one standalone
 * ZooKeeper (scripts/services/zookeeper.mjs, Debian's `zookeeper` package) is started first and every server
 * uses it for distributed DDL, so `… ON CLUSTER tollgate_test` statements run on all shards (each server also
 * gets the macros {shard} = its shard number and {replica} = replica<N>). CI installs ClickHouse and ZooKeeper
 * (see .ci/run); a machine without them fails here with what to install.
 */
export async function startClickHouse(
  opts: { shards?: number; zookeeper?: boolean } = {},
): Promise<TestClickHouse> {
  const shards = opts.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`startClickHouse: bad shards: ${shards}`);
  if (!findClickHouseServer())
    throw new Error(
      `clickhouse-server is not installed: ${CLICKHOUSE_INSTALL_HINT} (the ClickHouse tests need a real server)`,
    );
  const root = mkdtempSync(join(tmpdir(), "tollgate-ch-"));
  let zookeeper: RunningZooKeeper | null = null;
  let running: Running[] | undefined;
  try {
    if (opts.zookeeper) zookeeper = await startZooKeeper({ dir: join(root, "zookeeper") });
    for (let attempt = 1; !running; attempt++) {
      try {
        running = await startOnce(root, shards, attempt, zookeeper);
      } catch (e) {
        // Another process may take a port between freePorts() and the server's bind: try fresh ports.
        if (attempt < START_ATTEMPTS && /Address already in use/i.test(String(e))) continue;
        throw e;
      }
    }
  } catch (e) {
    await zookeeper?.stop();
    rmSync(root, { recursive: true, force: true });
    throw e;
  }
  const servers = running;
  const zk = zookeeper;
  const killAll = () => {
    for (const r of servers) if (!exited(r.proc)) r.proc.kill("SIGKILL");
    zk?.kill();
  };
  // A test run that dies without stop() must not leave servers behind.
  process.once("exit", killAll);
  const urls = servers.map((r) => r.url);
  return {
    url: urls[0]!,
    urls,
    tcpPorts: servers.map((r) => r.tcpPort),
    cluster: shards > 1 ? TEST_CLUSTER : null,
    zookeeper: zk?.address ?? null,
    stop: async () => {
      process.off("exit", killAll);
      await Promise.all(servers.map((r) => kill(r.proc)));
      await zk?.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
