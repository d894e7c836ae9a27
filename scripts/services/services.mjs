#!/usr/bin/env node
// Local services for development: one clickhouse-server and one redis-server on 127.0.0.1.
//
//   node scripts/services/services.mjs up       start both (idempotent), wait until they answer, print env lines
//   node scripts/services/services.mjs status   what runs, and whether it answers
//   node scripts/services/services.mjs down     stop both (SIGTERM, then SIGKILL) and delete their data
//
// Ports: ClickHouse HTTP 8123 / TCP 9000 / interserver 9009 and Redis 6379 by default; a busy default port is
// replaced by a free one. TOLLGATE_CH_HTTP_PORT, TOLLGATE_CH_TCP_PORT and TOLLGATE_REDIS_PORT pin a port (busy
// means an error). Data lives in $TMPDIR/tollgate-services (TOLLGATE_SERVICES_DIR overrides).
// `up` prints only the env lines on stdout (everything else goes to stderr), so `... up > .env` works.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import {
  clickHouseAnswers,
  clickHouseServerCommand,
  findClickHouseServer,
  tailFile,
  writeClickHouseConfig,
} from "./clickhouse-config.mjs";
import { freePort } from "./ports.mjs";

const INSTALL_ALL = "apt-get install -y clickhouse-server clickhouse-client redis-server";
const HOST = "127.0.0.1";
const BASE = resolve(process.env.TOLLGATE_SERVICES_DIR || join(tmpdir(), "tollgate-services"));
const STATE = join(BASE, "services.json");
const START_TIMEOUT_MS = 30_000;

const log = (msg) => process.stderr.write(`${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function findRedisServer() {
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), "/usr/bin", "/usr/local/bin"]) {
    if (dir && existsSync(join(dir, "redis-server"))) return join(dir, "redis-server");
  }
  return null;
}

function portFree(port) {
  return new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, HOST, () => s.close(() => res(true)));
  });
}

/** The env-pinned port (must be free), else the default if free, else any free port not in `taken`. */
async function choosePort(envName, fallback, taken) {
  const pinned = envName ? process.env[envName] : undefined;
  if (pinned) {
    const port = Number(pinned);
    if (!Number.isInteger(port) || port <= 0 || port > 65535)
      throw new Error(`${envName}=${pinned} is not a port`);
    if (!(await portFree(port))) throw new Error(`${envName}=${port}: port ${port} on ${HOST} is busy`);
    taken.add(port);
    return port;
  }
  if (!taken.has(fallback) && (await portFree(fallback))) {
    taken.add(fallback);
    return fallback;
  }
  for (;;) {
    const port = await freePort(HOST);
    if (!taken.has(port)) {
      taken.add(port);
      if (fallback) log(`port ${fallback} is busy, using ${port}`);
      return port;
    }
  }
}

function redisAnswers(port, timeoutMs = 1000) {
  return new Promise((res) => {
    const sock = createConnection({ host: HOST, port });
    let buf = "";
    const done = (ok) => {
      sock.destroy();
      res(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once("error", () => done(false));
    sock.once("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG"));
    });
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === "EPERM";
  }
}

/** Alive and still the process we started (guards against a recycled pid, where /proc exists). */
function ours(proc) {
  if (!proc?.pid || !alive(proc.pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, "utf8");
    return cmdline.includes(proc.marker);
  } catch {
    return true;
  }
}

function readState() {
  try {
    return JSON.parse(readFileSync(STATE, "utf8"));
  } catch {
    return null;
  }
}

function envLines(state) {
  return [
    `TOLLGATE_CLICKHOUSE_URL=http://${HOST}:${state.clickhouse.httpPort}`,
    `TOLLGATE_REDIS_URL=redis://${HOST}:${state.redis.port}`,
  ];
}

function startDetached(command, args, cwd, logFile) {
  const fd = openSync(logFile, "a");
  const child = spawn(command, args, { cwd, detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  child.unref();
  return child;
}

async function stopProc(name, proc) {
  if (!ours(proc)) return false;
  process.kill(proc.pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (alive(proc.pid) && Date.now() < deadline) await sleep(100);
  if (alive(proc.pid)) {
    log(`${name} (pid ${proc.pid}) did not stop on SIGTERM, sending SIGKILL`);
    process.kill(proc.pid, "SIGKILL");
    while (alive(proc.pid)) await sleep(50);
  }
  return true;
}

async function down({ quiet = false } = {}) {
  const state = readState();
  if (state) {
    for (const [name, proc] of [
      ["clickhouse-server", state.clickhouse],
      ["redis-server", state.redis],
    ]) {
      if (await stopProc(name, proc)) {
        if (!quiet) log(`stopped ${name} (pid ${proc.pid})`);
      }
    }
  } else if (!quiet) {
    log("no services were started (nothing to stop)");
  }
  rmSync(BASE, { recursive: true, force: true });
}

async function up() {
  const clickhouse = findClickHouseServer();
  const redis = findRedisServer();
  if (!clickhouse || !redis) {
    const missing = [!clickhouse && "clickhouse-server", !redis && "redis-server"]
      .filter(Boolean)
      .join(" and ");
    log(`${missing} ${clickhouse || redis ? "is" : "are"} not installed. Install with:\n  ${INSTALL_ALL}`);
    process.exit(1);
  }

  const existing = readState();
  if (existing) {
    if (ours(existing.clickhouse) && ours(existing.redis)) {
      log(`services already running (data in ${BASE})`);
      process.stdout.write(`${envLines(existing).join("\n")}\n`);
      return;
    }
    log("found a partly stopped set of services, restarting");
    await down({ quiet: true });
  }

  const taken = new Set();
  const httpPort = await choosePort("TOLLGATE_CH_HTTP_PORT", 8123, taken);
  const tcpPort = await choosePort("TOLLGATE_CH_TCP_PORT", 9000, taken);
  const interserverPort = await choosePort(null, 9009, taken);
  const redisPort = await choosePort("TOLLGATE_REDIS_PORT", 6379, taken);
  rmSync(BASE, { recursive: true, force: true });
  mkdirSync(BASE, { recursive: true });

  const chDir = join(BASE, "clickhouse");
  const files = writeClickHouseConfig({ dir: chDir, httpPort, tcpPort, interserverPort });
  const chStdout = join(chDir, "log", "stdout.log");
  const ch = clickHouseServerCommand(clickhouse, files.configPath);
  const chChild = startDetached(ch.command, ch.args, chDir, chStdout);

  const redisDir = join(BASE, "redis");
  mkdirSync(redisDir, { recursive: true });
  const redisLog = join(redisDir, "redis.log");
  const redisArgs = [
    "--port",
    String(redisPort),
    "--bind",
    HOST,
    "--dir",
    redisDir,
    "--save",
    "",
    "--appendonly",
    "no",
    "--protected-mode",
    "no",
    "--daemonize",
    "no",
  ];
  const redisChild = startDetached(redis, redisArgs, redisDir, redisLog);

  const state = {
    dir: BASE,
    clickhouse: {
      pid: chChild.pid,
      marker: files.configPath,
      httpPort,
      tcpPort,
      interserverPort,
      dir: chDir,
    },
    redis: { pid: redisChild.pid, marker: "redis-server", port: redisPort, dir: redisDir },
  };
  writeFileSync(STATE, `${JSON.stringify(state, null, 2)}\n`);

  const deadline = Date.now() + START_TIMEOUT_MS;
  let chUp = false;
  let redisUp = false;
  while (!(chUp && redisUp)) {
    chUp ||= await clickHouseAnswers(`http://${HOST}:${httpPort}`);
    redisUp ||= await redisAnswers(redisPort);
    const chDead = !chUp && !alive(chChild.pid);
    const redisDead = !redisUp && !alive(redisChild.pid);
    if (chDead || redisDead || Date.now() > deadline) {
      const why = [];
      if (!chUp)
        why.push(
          `clickhouse-server ${chDead ? "exited" : "did not answer SELECT 1"} (http ${httpPort}):\n${
            tailFile(files.errorLog, 15) || tailFile(chStdout, 15) || "(no log output)"
          }`,
        );
      if (!redisUp)
        why.push(
          `redis-server ${redisDead ? "exited" : "did not answer PING"} (port ${redisPort}):\n${
            tailFile(redisLog, 15) || "(no log output)"
          }`,
        );
      await down({ quiet: true });
      log(why.join("\n\n"));
      process.exit(1);
    }
    if (!(chUp && redisUp)) await sleep(100);
  }
  log(
    `clickhouse-server pid ${chChild.pid} (http ${httpPort}, tcp ${tcpPort}), redis-server pid ${redisChild.pid} (port ${redisPort}); data in ${BASE}`,
  );
  process.stdout.write(`${envLines(state).join("\n")}\n`);
}

async function status() {
  const state = readState();
  if (!state) {
    console.log(`not running (no state in ${STATE})`);
    return false;
  }
  const ch = state.clickhouse;
  const rd = state.redis;
  const chRuns = ours(ch);
  const rdRuns = ours(rd);
  const chAnswers = chRuns && (await clickHouseAnswers(`http://${HOST}:${ch.httpPort}`));
  const rdAnswers = rdRuns && (await redisAnswers(rd.port));
  const word = (runs, answers) => (!runs ? "not running" : answers ? "running" : "running, not answering");
  console.log(
    `clickhouse-server: ${word(chRuns, chAnswers)} (pid ${ch.pid}, http://${HOST}:${ch.httpPort}, tcp ${ch.tcpPort})`,
  );
  console.log(`redis-server:      ${word(rdRuns, rdAnswers)} (pid ${rd.pid}, redis://${HOST}:${rd.port})`);
  console.log(`data: ${state.dir}`);
  if (chAnswers && rdAnswers) for (const line of envLines(state)) console.log(line);
  return chAnswers && rdAnswers;
}

const command = process.argv[2];
try {
  if (command === "up") await up();
  else if (command === "down") await down();
  else if (command === "status") process.exitCode = (await status()) ? 0 : 1;
  else {
    log("usage: node scripts/services/services.mjs up|down|status");
    process.exitCode = 2;
  }
} catch (e) {
  log(`services ${command}: ${e instanceof Error ? e.message : e}`);
  process.exitCode = 1;
}
