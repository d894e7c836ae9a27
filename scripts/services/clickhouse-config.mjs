// ClickHouse server config generation, shared by scripts/services/services.mjs (local dev services) and
// packages/server/test/clickhouse-server.ts (the test harness). Plain Node ESM, no dependencies.
// The template (clickhouse/config.xml + clickhouse/users.xml) works on Debian's 18.16 and on modern ClickHouse.
import { accessSync, constants, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

const TEMPLATE_DIR = fileURLToPath(new URL("./clickhouse/", import.meta.url));

/** What to install when clickhouse-server is missing (Debian/Ubuntu). */
export const CLICKHOUSE_INSTALL_HINT = "apt-get install -y clickhouse-server clickhouse-client";

function xmlEscape(s) {
  return String(s)
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

function isExecutable(path) {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function which(name) {
  // Debian installs clickhouse-server into /usr/sbin, which is not on a non-root user's PATH.
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/bin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return null;
}

/**
 * How to run a ClickHouse server here: `clickhouse-server` (Debian 18.16, official packages) or the single
 * `clickhouse` binary with `server`. Null when neither is installed.
 * @returns {{ command: string, args: string[] } | null}
 */
export function findClickHouseServer() {
  const server = which("clickhouse-server");
  if (server) return { command: server, args: [] };
  const single = which("clickhouse");
  if (single) return { command: single, args: ["server"] };
  return null;
}

function remoteServersXml(cluster) {
  if (!cluster) return "";
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(cluster.name)) throw new Error(`bad cluster name: ${cluster.name}`);
  if (cluster.shards.length === 0) throw new Error("a cluster needs at least one shard");
  const shards = cluster.shards
    .map(
      (s) =>
        `      <shard><replica><host>${xmlEscape(s.host ?? "127.0.0.1")}</host><port>${Number(s.tcpPort)}</port></replica></shard>`,
    )
    .join("\n");
  return `<remote_servers>\n    <${cluster.name}>\n${shards}\n    </${cluster.name}>\n  </remote_servers>`;
}

/**
 * ZooKeeper and the distributed DDL queue (`ON CLUSTER`), with `macros` naming this server's shard and replica
 * (for `ReplicatedMergeTree('/clickhouse/tables/{shard}/t', '{replica}')`).
 */
function zooKeeperXml(zookeeper, macros) {
  if (!zookeeper) return "";
  const port = Number(zookeeper.port);
  if (!Number.isInteger(port) || port <= 0 || port > 65535)
    throw new Error(`clickhouse config: bad zookeeper port: ${zookeeper.port}`);
  const lines = [
    "<zookeeper>",
    `    <node><host>${xmlEscape(zookeeper.host ?? "127.0.0.1")}</host><port>${port}</port></node>`,
    "  </zookeeper>",
    "  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>",
  ];
  if (macros)
    lines.push(
      `  <macros><shard>${xmlEscape(macros.shard)}</shard><replica>${xmlEscape(macros.replica)}</replica></macros>`,
    );
  return lines.join("\n");
}

/**
 * The config.xml text for one server whose files live under `dir` (data in dir/data, logs in dir/log, users
 * in dir/users.xml). With `cluster`, a `remote_servers` section names a cluster of one-replica shards,
 * so `Distributed(<name>, db, table, rand())` works. With `zookeeper` ({ host?, port }), the server uses that
 * ZooKeeper and its distributed DDL queue, so `… ON CLUSTER <name>` statements work; `macros` ({ shard,
 * replica }) sets the server's {shard} and {replica}.
 */
export function renderClickHouseConfig(opts) {
  for (const k of ["httpPort", "tcpPort", "interserverPort"]) {
    const v = opts[k];
    if (!Number.isInteger(v) || v <= 0 || v > 65535) throw new Error(`clickhouse config: bad ${k}: ${v}`);
  }
  const values = {
    HTTP_PORT: String(opts.httpPort),
    TCP_PORT: String(opts.tcpPort),
    INTERSERVER_HTTP_PORT: String(opts.interserverPort),
    DATA_DIR: xmlEscape(join(opts.dir, "data")),
    LOG_DIR: xmlEscape(join(opts.dir, "log")),
    USERS_CONFIG: xmlEscape(join(opts.dir, "users.xml")),
    REMOTE_SERVERS: remoteServersXml(opts.cluster),
    ZOOKEEPER: zooKeeperXml(opts.zookeeper, opts.macros),
  };
  const template = readFileSync(join(TEMPLATE_DIR, "config.xml"), "utf8");
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (m, key) => {
    if (!(key in values)) throw new Error(`clickhouse config template: unknown placeholder ${m}`);
    return values[key];
  });
}

/**
 * Writes config.xml and users.xml into `opts.dir` (created if missing) and creates the data and log dirs.
 * Start the server with `--config-file=<configPath>` and cwd `dir`.
 */
export function writeClickHouseConfig(opts) {
  const dir = opts.dir;
  mkdirSync(join(dir, "data"), { recursive: true });
  mkdirSync(join(dir, "log"), { recursive: true });
  const configPath = join(dir, "config.xml");
  const usersPath = join(dir, "users.xml");
  writeFileSync(configPath, renderClickHouseConfig(opts));
  writeFileSync(usersPath, readFileSync(join(TEMPLATE_DIR, "users.xml"), "utf8"));
  return {
    configPath,
    usersPath,
    dataDir: join(dir, "data"),
    serverLog: join(dir, "log", "server.log"),
    errorLog: join(dir, "log", "error.log"),
  };
}

/** The command line that starts a server from a config written by writeClickHouseConfig. */
export function clickHouseServerCommand(server, configPath) {
  return { command: server.command, args: [...server.args, `--config-file=${configPath}`] };
}

/** True when the server at `httpUrl` answers `SELECT 1` over HTTP. */
export async function clickHouseAnswers(httpUrl, timeoutMs = 1000) {
  try {
    const res = await fetch(`${httpUrl}/?query=${encodeURIComponent("SELECT 1")}`, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    return res.ok && (await res.text()).trim() === "1";
  } catch {
    return false;
  }
}

/**
 * The last `maxLines` lines of a (log) file, or "" if it is missing. Stack-trace frames ("12. /lib/...") and
 * blank lines are left out, so the exception messages of a ClickHouse error log fit in an error message.
 */
export function tailFile(path, maxLines = 20) {
  try {
    const lines = readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "" && !/^\s*\d+\. /.test(l) && !/^Stack trace:\s*$/.test(l));
    return lines.slice(-maxLines).join("\n");
  } catch {
    return "";
  }
}
