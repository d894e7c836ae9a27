import type { Command } from "commander";
import { pino } from "pino";
import { dataDirFrom, portFrom, pricebookFrom } from "../config.js";
import { type GatewayConfig, gatewayConfigFromEnv } from "../gateway/config.js";
import { heapGrowthFrom, limitHeapGrowth } from "../heap-growth.js";
import { retentionFromEnv } from "../jobs/retention.js";
import { roleFrom, SERVER_ROLES, servesRoutes } from "../roles.js";
import { policyRefreshMs, seedPassesMs } from "../runtime.js";
import { startServer } from "../serve.js";
import { duckDbBlockSizeFrom } from "../store/duckdb/block-size.js";
import { checkpointWalBytesFrom } from "../store/duckdb/checkpoint-pacer.js";
import { duckDbMemoryLimitFrom } from "../store/duckdb/memory-limit.js";
import { backgroundNiceFrom, lowerBackgroundThreads } from "../thread-priority.js";
import { appClient } from "./client.js";
import { CliError, type GlobalOpts, runtimeOptions } from "./common.js";
import { demoDays, demoNextStep, runDemo } from "./demo.js";
import { writableDataDir } from "./writable-data-dir.js";

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description(
      "run Tollgate on one port: the gateway (OpenAI/Anthropic base URL), the ingest API and the query API, and the scheduled jobs",
    )
    // No commander default: one would hide whether the flag was given, and the flag wins over the env.
    .option("-p, --port <port>", "port to listen on (env TOLLGATE_PORT; default 4242)")
    .option(
      "--role <role>",
      `what this process serves, one of ${SERVER_ROLES.join("|")} (env TOLLGATE_ROLE; default all). ` +
        "gateway: the gateway proxy + ingest + one call by id (GET /api/events/:id) (stateless, scale at will); api: the query/admin API (/api/...) + ingest; " +
        "worker: the scheduled jobs (retention), one worker at a time under a job lease in Redis (--redis; lease ttl env TOLLGATE_JOB_LEASE_TTL_MS, default 15000); " +
        "all: everything in one process. Every role serves /healthz, /readyz and /metrics",
    )
    .option("--host <host>", "interface to bind", "127.0.0.1")
    .option(
      "--upstreams <file>",
      "named upstreams for x-tollgate-upstream (YAML/JSON; env TOLLGATE_UPSTREAMS). Default upstreams: env TOLLGATE_OPENAI_BASE_URL, TOLLGATE_ANTHROPIC_BASE_URL",
    )
    .option(
      "--demo [days]",
      "load demo data first (if the workspace has none): realistic traffic for N days (default 90)",
    )
    .addHelpText(
      "after",
      `
Gateway (environment; per request, headers override):
  TOLLGATE_OPENAI_BASE_URL      OpenAI-compatible upstream, with /v1 (default https://api.openai.com/v1)
  TOLLGATE_ANTHROPIC_BASE_URL   Anthropic upstream, with /v1 (default https://api.anthropic.com/v1)
  TOLLGATE_UPSTREAM_TIMEOUT_MS  wait for the upstream's headers, and between its body chunks (600000);
                                header x-tollgate-timeout-ms, up to TOLLGATE_UPSTREAM_TIMEOUT_MAX_MS (3600000)
  TOLLGATE_GATEWAY_RETRIES      retries of 429/5xx/connection errors (0, at most 10); header x-tollgate-retries
  TOLLGATE_UPSTREAM_CONNECTIONS connections per upstream origin (1024); a stream holds one throughout, and
                                a call finding all busy waits for one, within its upstream timeout
  TOLLGATE_GATEWAY_REQUIRE_KEY=1  refuse calls without a gateway key in x-tollgate-key
  TOLLGATE_BACKGROUND_FOLLOW_MS a background response (OpenAI Responses, background: true) no client has polled
                                for this long is polled by the gateway itself with its submission's headers, at
                                doubling intervals up to 5 min, so it is billed though the app never asks
                                (webhooks); 30000 by default, 0 = never
  TOLLGATE_WS_HEARTBEAT_MS      how often both sides of a WebSocket session (OpenAI Realtime) are pinged; a side
                                that has not answered by the next ping is dropped (30000; 0 = never)
  TOLLGATE_RUN_HOLD_WAIT_MS     how long a call of an agent run waits while the run's calls in flight hold what
                                is left under its cost or token ceiling, before a 429 (30000; 0 = at once)
  TOLLGATE_PUBLIC_URL           the gateway's URL as clients reach it, without /v1 (e.g. https://llm.example.com):
                                Anthropic message batches read through it name it in results_url, so their
                                results are read (and recorded) through the gateway
  HTTPS_PROXY, HTTP_PROXY       egress proxy for upstream calls (as curl reads them); NO_PROXY: hosts
                                reached directly

Tuning (environment):
  TOLLGATE_BACKGROUND_NICE      how many nice steps below the main thread the background threads run
                                (store thread, DuckDB, libuv pool, V8 helpers), so commits give way to
                                proxying; 0 (off) to 19, default 10; Linux only
  TOLLGATE_HEAP_GROWTH_PERCENT  how far the JS heap may grow past what the last full GC kept before the
                                next one, in %; default 100 (bounds RSS under load), 0 = V8's own (up to 300)
  TOLLGATE_STORE_THREAD=0|1     the embedded DuckDB store, or ClickHouse's appends, in-process (0) or on a
                                thread of their own (1, default: a better gateway tail; 0: ~40 MB less RSS)
  TOLLGATE_DUCKDB_MEMORY_LIMIT  DuckDB's buffer-pool cap, e.g. 256MB (default) or 1GB; at least 128MB
  TOLLGATE_CHECKPOINT_WAL_MB    checkpoint the embedded store once its WAL holds this many MB and is not
                                growing at a bulk load's pace, 1 to 256 (32); less keeps fewer rows in memory
  TOLLGATE_DUCKDB_BLOCK_SIZE    block size of a new embedded store file, 16384 to 262144 (DuckDB's default):
                                16384 halves the memory rows take until a checkpoint; analytics read more blocks
  TOLLGATE_POLICY_REFRESH_MS    how often a replica re-reads budgets and limits from a shared store (5000)
  TOLLGATE_BUDGET_SEED_PASSES_MS  with limits on Redis, when a budget added while running reads its earlier
                                calls from the store again, in ms after it starts counting live, ascending
                                (5000,30000,300000,3600000)

Scheduled jobs (environment; roles all and worker):
  TOLLGATE_RAW_RETENTION_DAYS   purge raw calls older than this many days, at start and hourly (their spend
                                stays in the daily summaries; raw calls that limits still count are kept);
                                unset: every raw call is kept
  TOLLGATE_SUMMARY_RETENTION_MONTHS  drop daily summaries older than this many months; unset: kept

ClickHouse (environment; with --clickhouse or TOLLGATE_CLICKHOUSE_URL):
  TOLLGATE_CLICKHOUSE_CLUSTER   cluster name: shard-local tables under Distributed ones, DDL ON CLUSTER
  TOLLGATE_CLICKHOUSE_NODES     url1,url2,…: with a cluster, run its DDL node by node (no Keeper/ZooKeeper)`,
    )
    .action(
      async (
        opts: { port?: string; host: string; demo?: true | string; upstreams?: string; role?: string },
        cmd: Command,
      ) => {
        const g = cmd.optsWithGlobals<GlobalOpts>();
        let role: ReturnType<typeof roleFrom>;
        try {
          role = roleFrom(opts.role);
        } catch (e) {
          throw new CliError((e as Error).message, 2);
        }
        if (opts.demo !== undefined && !servesRoutes(role, "ingest"))
          throw new CliError(
            `--demo loads data through the ingest API, which --role ${role} does not serve`,
            2,
          );
        const log = pino({ base: undefined });
        // Checked before anything opens: a bad one is a usage error, not a stack trace or NaN days of demo.
        const demoDaysToLoad =
          opts.demo === undefined ? null : opts.demo === true ? 90 : demoDays(opts.demo, "--demo");
        const ro = runtimeOptions(g);
        let port: number;
        let backgroundNice: number;
        let heapGrowth: number;
        let gateway: GatewayConfig | undefined;
        try {
          port = portFrom(opts.port);
          backgroundNice = backgroundNiceFrom();
          heapGrowth = heapGrowthFrom();
          duckDbMemoryLimitFrom();
          duckDbBlockSizeFrom();
          checkpointWalBytesFrom();
          policyRefreshMs();
          seedPassesMs();
          retentionFromEnv();
          // Its settings read here: a bad one is a usage error (exit 2, no stack trace), as these are.
          if (servesRoutes(role, "gateway")) gateway = gatewayConfigFromEnv({}, opts.upstreams ?? null);
        } catch (e) {
          throw new CliError((e as Error).message, 2);
        }
        writableDataDir(ro.dataDir);
        limitHeapGrowth(heapGrowth);
        const { runtime, url, stop } = await startServer({
          ...ro,
          role,
          port,
          host: opts.host,
          log: (m) => log.info(m),
          gatewayConfig: gateway,
        }).catch((e: unknown) => {
          throw listenError(e, opts.host, port);
        });
        // After the start: the store thread, DuckDB's workers and libuv's pool exist by now.
        const backgroundThreads = lowerBackgroundThreads(backgroundNice);
        log.info(
          {
            url,
            role,
            dataDir: dataDirFrom(g.dataDir),
            pricebook: pricebookFrom(g.pricebook),
            backgroundNice,
            backgroundThreads,
            heapGrowth,
          },
          "tollgate listening",
        );
        let signalled = false;
        const shutdown = (signal: string) => {
          // Node's default for a second signal would exit at once, losing the records still in memory.
          if (signalled) {
            log.warn({ signal }, "shutting down now: calls in flight are cut short (each still recorded)");
            return void stop();
          }
          signalled = true;
          log.info({ signal }, "shutting down (calls in flight may finish; signal again to cut them short)");
          stop().then(
            () => process.exit(0),
            (e) => {
              log.error(e);
              process.exit(1);
            },
          );
        };
        process.on("SIGINT", () => shutdown("SIGINT"));
        process.on("SIGTERM", () => shutdown("SIGTERM"));
        if (demoDaysToLoad !== null) {
          const days = demoDaysToLoad;
          const existing = await runtime.store.count({
            workspaceId: "default",
            where: { data_mode: "demo" },
          });
          if (existing > 0) log.info({ existing }, "demo data already loaded");
          else {
            const summary = await runDemo(appClient(runtime), {
              days,
              workspace: "default",
              progress: false,
            });
            log.info(summary, "demo data loaded");
          }
          log.info(`try: ${demoNextStep(days, g, "default")}`);
        }
      },
    );
}

/**
 * Why the port could not be listened on, said as what to do (not a stack): a port in use is a failure
 * (exit 1); a --host that is no address of this machine is a usage error (exit 2).
 */
function listenError(e: unknown, host: string, port: number): unknown {
  const where = `cannot listen on ${host}:${port}`;
  switch ((e as NodeJS.ErrnoException).code) {
    case "EADDRINUSE":
      return new CliError(
        `${where}: the port is in use (another server?); pick another with --port or TOLLGATE_PORT`,
      );
    case "EADDRNOTAVAIL":
      return new CliError(`${where}: --host ${host} is not an address of this machine`, 2);
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new CliError(`${where}: --host ${host} could not be resolved`, 2);
    default:
      return e;
  }
}
