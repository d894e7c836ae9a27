// A standalone ZooKeeper for ClickHouse's distributed DDL (`ON CLUSTER`) in tests: one server on a free
// 127.0.0.1 port, data in a directory of the caller's, no admin server, no fsync. Debian's `zookeeper`
// package provides the jars (/usr/share/java/zookeeper.jar names its dependencies in its manifest); it is
// run directly with `java … ZooKeeperServerMain <zoo.cfg>`, so no system service is involved.
// Plain Node ESM, no dependencies (imported by packages/server/test/clickhouse-server.ts).
import { spawn } from "node:child_process";
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { delimiter, join } from "node:path";
import { tailFile } from "./clickhouse-config.mjs";
import { freePort } from "./ports.mjs";

/** What to install when ZooKeeper is missing (Debian/Ubuntu; pulls in a Java runtime). */
export const ZOOKEEPER_INSTALL_HINT = "apt-get install -y zookeeper";

const HOST = "127.0.0.1";
const DEFAULT_JARS = ["/usr/share/java/zookeeper.jar"];
// Log to stderr (captured in <dir>/zookeeper.log) when the slf4j binding is there; warnings and errors only.
const SLF4J_SIMPLE = "/usr/share/java/slf4j-simple.jar";
const START_TIMEOUT_MS = 20_000;
const START_ATTEMPTS = 3;

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findJava() {
  if (process.env.JAVA_HOME) {
    const p = join(process.env.JAVA_HOME, "bin", "java");
    if (executable(p)) return p;
  }
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), "/usr/bin"]) {
    if (dir && executable(join(dir, "java"))) return join(dir, "java");
  }
  return null;
}

/**
 * The java binary and class path that run a ZooKeeper server here, or null (with `missing` saying what) when
 * the jars or Java are not installed. ZOOKEEPER_CLASSPATH overrides the Debian jar location.
 * @returns {{ java: string, classpath: string } | { missing: string }}
 */
export function findZooKeeper() {
  const jars = process.env.ZOOKEEPER_CLASSPATH
    ? process.env.ZOOKEEPER_CLASSPATH.split(delimiter)
    : DEFAULT_JARS;
  if (!jars.some((j) => existsSync(j)))
    return { missing: `ZooKeeper is not installed (no ${jars.join(", ")}): ${ZOOKEEPER_INSTALL_HINT}` };
  const java = findJava();
  if (!java)
    return { missing: `java is not installed (ZooKeeper needs it): apt-get install -y default-jre-headless` };
  const extra = existsSync(SLF4J_SIMPLE) ? [SLF4J_SIMPLE] : [];
  return { java, classpath: [...jars, ...extra].join(delimiter) };
}

/** The answer to a four-letter command ("srvr", "ruok"), or "" if none came within `timeoutMs`. */
export function zooKeeperCommand(port, word, timeoutMs = 500) {
  return new Promise((resolve) => {
    const s = connect(port, HOST);
    let data = "";
    s.setTimeout(timeoutMs, () => s.destroy());
    s.on("connect", () => s.end(word));
    s.on("data", (d) => {
      data += d;
    });
    s.on("close", () => resolve(data));
    s.on("error", () => resolve(""));
  });
}

/**
 * True once the server serves requests. (`ruok` answers "imok" as soon as the port is bound, before the
 * database is loaded; `srvr` names the mode only when it serves.)
 */
export async function zooKeeperServing(port, timeoutMs = 500) {
  return /^Mode: standalone$/m.test(await zooKeeperCommand(port, "srvr", timeoutMs));
}

function kill(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once("exit", () => resolve());
    proc.kill("SIGKILL");
  });
}

async function startOnce(zk, dir, port) {
  const dataDir = join(dir, "data");
  mkdirSync(dataDir, { recursive: true });
  const configPath = join(dir, "zoo.cfg");
  writeFileSync(
    configPath,
    [
      "tickTime=500",
      // Sessions may last 2..20 ticks; ClickHouse asks for 30 s and gets the 10 s maximum.
      "maxSessionTimeout=10000",
      `dataDir=${dataDir}`,
      `clientPort=${port}`,
      `clientPortAddress=${HOST}`,
      "maxClientCnxns=0",
      // Test data: no fsync per transaction, no admin HTTP server (it would take port 8080).
      "forceSync=no",
      "admin.enableServer=false",
      "4lw.commands.whitelist=srvr,ruok",
      "",
    ].join("\n"),
  );
  const logPath = join(dir, "zookeeper.log");
  const log = openSync(logPath, "w");
  const proc = spawn(
    zk.java,
    [
      "-Xmx256m",
      "-XX:+UseSerialGC",
      "-XX:TieredStopAtLevel=1",
      "-Djava.net.preferIPv4Stack=true",
      "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
      "-cp",
      zk.classpath,
      "org.apache.zookeeper.server.ZooKeeperServerMain",
      configPath,
    ],
    { cwd: dir, stdio: ["ignore", log, log] },
  );
  closeSync(log);
  let spawnError = "";
  proc.on("error", (e) => {
    spawnError = `spawn ${zk.java}: ${e.message}`;
  });
  const tail = () => spawnError || tailFile(logPath, 15) || "(ZooKeeper wrote nothing to its log)";
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (await zooKeeperServing(port)) return { proc, logPath };
    if (proc.exitCode !== null || proc.signalCode !== null || spawnError) {
      await kill(proc);
      throw new Error(
        `ZooKeeper (127.0.0.1:${port}) exited with ${proc.exitCode ?? proc.signalCode} during startup:\n${tail()}`,
      );
    }
    if (Date.now() > deadline) {
      await kill(proc);
      throw new Error(
        `ZooKeeper did not serve on 127.0.0.1:${port} within ${START_TIMEOUT_MS / 1000} s:\n${tail()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Starts a standalone ZooKeeper on a free 127.0.0.1 port (or `opts.port`) with its files in `opts.dir`
 * (created if missing; the caller deletes it), and resolves once it serves requests (~0.3 s).
 * `stop()` kills it (SIGKILL: the data is throwaway) and resolves when it has exited.
 * @param {{ dir: string, port?: number }} opts
 */
export async function startZooKeeper(opts) {
  const zk = findZooKeeper();
  if ("missing" in zk) throw new Error(zk.missing);
  mkdirSync(opts.dir, { recursive: true });
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort(HOST));
    try {
      const { proc, logPath } = await startOnce(zk, join(opts.dir, `try${attempt}`), port);
      return {
        host: HOST,
        port,
        /** host:port, the form of a ZooKeeper connect string. */
        address: `${HOST}:${port}`,
        logPath,
        pid: proc.pid,
        exited: () => proc.exitCode !== null || proc.signalCode !== null,
        kill: () => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
        },
        stop: () => kill(proc),
      };
    } catch (e) {
      // Another process may take the port between freePort() and ZooKeeper's bind: try a fresh one.
      if (!opts.port && attempt < START_ATTEMPTS && /Address already in use|BindException/i.test(String(e)))
        continue;
      throw e;
    }
  }
}
