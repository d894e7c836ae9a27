import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ClickHouseOptions } from "./clickhouse/open.js";
import type { Store } from "./types.js";

const THREAD_ENTRY = new URL("./duckdb/thread-entry.js", import.meta.url);
const CLICKHOUSE_APPEND_ENTRY = new URL("./clickhouse/append-entry.js", import.meta.url);

export interface StoreOptions {
  /** The embedded store, or ClickHouse's appends, on a thread of their own (see below). */
  thread?: boolean;
  /** The scale-out store instead of the embedded one (default: TOLLGATE_CLICKHOUSE_URL, …). */
  clickhouse?: ClickHouseOptions | null;
}

/** ClickHouse settings from the environment, or null for the embedded store. */
export function clickHouseFromEnv(redisUrl: string | null, env = process.env): ClickHouseOptions | null {
  const url = env.TOLLGATE_CLICKHOUSE_URL;
  if (!url) return null;
  const nodes = env.TOLLGATE_CLICKHOUSE_NODES?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    url,
    cluster: env.TOLLGATE_CLICKHOUSE_CLUSTER || null,
    nodes,
    redisUrl: redisUrl ?? env.TOLLGATE_REDIS_URL ?? null,
  };
}

/**
 * ClickHouse when configured, its appends on a thread of their own; else the embedded DuckDB store, on
 * its own thread. A thread needs its compiled entry file, so tests running the TypeScript sources get
 * everything in-process. TOLLGATE_STORE_THREAD=0|1 overrides: the thread keeps the store's work off the
 * gateway's event loop (latency), in-process costs less CPU per ingested event (bulk ingest). Same
 * interface either way.
 */
export async function openStore(dataDir: string, opts: StoreOptions = {}): Promise<Store> {
  const ch = opts.clickhouse === undefined ? clickHouseFromEnv(null) : opts.clickhouse;
  if (ch) {
    const store = await (await import("./clickhouse/open.js")).openClickHouse(ch);
    if (threaded(opts.thread, CLICKHOUSE_APPEND_ENTRY))
      await store.appendOnThread(CLICKHOUSE_APPEND_ENTRY, ch).catch(async (e) => {
        await store.close();
        throw e;
      });
    return store;
  }
  // Imported on use, as ClickHouse is: a process on ClickHouse never maps DuckDB's library (~20 MB of RSS).
  if (threaded(opts.thread, THREAD_ENTRY))
    return (await import("./duckdb/thread-store.js")).ThreadStore.open(dataDir, THREAD_ENTRY);
  const { DuckDbStore } = await import("./duckdb/store.js");
  const { reopeningStore } = await import("./duckdb/reopening.js");
  // As on the store's thread (thread-entry.ts): a database DuckDB invalidated is opened again. In-process,
  // a batch is written a few hundred rows at a time, the gateway's requests served between.
  return reopeningStore(() => DuckDbStore.open(dataDir, { rowsPerAppender: IN_PROCESS_ROWS_PER_APPENDER }));
}

/** ~1.5 ms of the event loop per Appender (appendInSlices). */
const IN_PROCESS_ROWS_PER_APPENDER = 256;

function threaded(asked: boolean | undefined, entry: URL): boolean {
  const env = process.env.TOLLGATE_STORE_THREAD;
  return asked ?? (env === undefined ? existsSync(fileURLToPath(entry)) : env !== "0");
}
