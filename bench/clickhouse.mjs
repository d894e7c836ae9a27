// A ClickHouse server for the benchmarks: either its own clickhouse-server on free 127.0.0.1 ports with its
// data in a fresh temp dir (killed and deleted by stop(), also on an error, Ctrl-C or SIGTERM), or the server
// at TOLLGATE_CLICKHOUSE_URL. Either way each database the bench makes is dropped again by stop().
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CLICKHOUSE_INSTALL_HINT,
  clickHouseAnswers,
  clickHouseServerCommand,
  findClickHouseServer,
  tailFile,
  writeClickHouseConfig,
} from "../scripts/services/clickhouse-config.mjs";

const START_TIMEOUT_MS = 30_000;

/** `n` distinct free loopback ports. */
async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise((resolve, reject) => {
        s.once("error", reject);
        s.listen(0, "127.0.0.1", resolve);
      });
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/**
 * Runs one statement over HTTP (POST body, no client timeout: OPTIMIZE … FINAL can take minutes); resolves
 * with the response text, rejects with the server's error.
 */
export function chQuery(baseUrl, sql) {
  const u = new URL(baseUrl);
  const headers = { "content-type": "text/plain" };
  if (u.username || u.password)
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64")}`;
  const send = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(`${u.protocol}//${u.host}/`, { method: "POST", headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => {
        text += d;
      });
      res.on("end", () =>
        res.statusCode === 200
          ? resolve(text)
          : reject(new Error(`ClickHouse: ${sql.slice(0, 120)}: ${text.trim()}`)),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(sql);
  });
}

/**
 * Starts (or connects to) a ClickHouse server. Resolves with { url, pid, dataDir, external, version, maxQuerySize,
 * newDatabase(prefix), stop() }: `url` is the server's HTTP base URL (no database), `pid` the server process
 * when the bench started it (null otherwise), `newDatabase` a fresh database name that stop() drops.
 * `opts.maxQuerySize` sets max_query_size in the started server's default profile (not for an external one).
 */
export async function benchClickHouse(opts = {}) {
  const databases = new Set();
  const external = process.env.TOLLGATE_CLICKHOUSE_URL;
  let proc = null;
  let root = null;
  let url;
  let errorLog = null;
  const cleanupSync = () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    if (root) rmSync(root, { recursive: true, force: true });
  };
  const dropAll = async () => {
    for (const db of databases) await chQuery(url, `DROP DATABASE IF EXISTS ${db}`).catch(() => {});
    databases.clear();
  };
  // Ctrl-C or SIGTERM mid-run: drop the bench's databases (briefly), kill the server, delete its dir.
  const onSignal = async (sig) => {
    await Promise.race([dropAll(), new Promise((r) => setTimeout(r, 3000))]);
    cleanupSync();
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  if (external) {
    const u = new URL(external);
    u.pathname = "/";
    url = u.toString().replace(/\/$/, "");
    if (!(await clickHouseAnswers(url, 5000)))
      throw new Error(`TOLLGATE_CLICKHOUSE_URL ${u.host} does not answer`);
  } else {
    const server = findClickHouseServer();
    if (!server) throw new Error(`clickhouse-server is not installed: ${CLICKHOUSE_INSTALL_HINT}`);
    root = mkdtempSync(join(tmpdir(), "tollgate-bench-ch-"));
    process.once("exit", cleanupSync);
    for (let attempt = 1; ; attempt++) {
      const [httpPort, tcpPort, interserverPort] = await freePorts(3);
      const dir = join(root, `try${attempt}`);
      const files = writeClickHouseConfig({ dir, httpPort, tcpPort, interserverPort });
      if (opts.maxQuerySize) {
        const users = readFileSync(files.usersPath, "utf8");
        const withSize = users.replace(
          "<default>",
          `<default>\n      <max_query_size>${Math.trunc(opts.maxQuerySize)}</max_query_size>`,
        );
        if (withSize === users) throw new Error("users.xml: no default profile to set max_query_size in");
        writeFileSync(files.usersPath, withSize);
      }
      errorLog = files.errorLog;
      const { command, args } = clickHouseServerCommand(server, files.configPath);
      proc = spawn(command, args, { cwd: dir, stdio: ["ignore", "ignore", "ignore"] });
      url = `http://127.0.0.1:${httpPort}`;
      const deadline = Date.now() + START_TIMEOUT_MS;
      let up = false;
      while (!up && proc.exitCode === null && Date.now() < deadline) {
        up = await clickHouseAnswers(url, 500);
        if (!up) await new Promise((r) => setTimeout(r, 100));
      }
      if (up) break;
      const log = tailFile(errorLog, 10);
      if (proc.exitCode === null) proc.kill("SIGKILL");
      if (attempt < 3 && /Address already in use/i.test(log)) continue;
      cleanupSync();
      throw new Error(`clickhouse-server did not start on ${url}:\n${log}`);
    }
  }
  if (external && opts.maxQuerySize)
    throw new Error(
      "--ch-max-query-size applies to a server the bench starts, not to TOLLGATE_CLICKHOUSE_URL",
    );
  const version = (await chQuery(url, "SELECT version()")).trim();
  const maxQuerySize = Number(
    await chQuery(url, "SELECT value FROM system.settings WHERE name = 'max_query_size'"),
  );
  return {
    url,
    pid: proc ? proc.pid : null,
    dataDir: root,
    external: !!external,
    version,
    maxQuerySize,
    newDatabase(prefix = "tollgate_bench") {
      const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${databases.size}`;
      databases.add(name);
      return name;
    },
    async dropDatabase(name) {
      await chQuery(url, `DROP DATABASE IF EXISTS ${name}`);
      databases.delete(name);
    },
    async stop() {
      await dropAll();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      if (proc) {
        process.off("exit", cleanupSync);
        if (proc.exitCode === null && proc.signalCode === null) {
          const exited = new Promise((r) => proc.once("exit", r));
          proc.kill("SIGKILL");
          await exited;
        }
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}
