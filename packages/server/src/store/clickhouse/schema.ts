import { SUMMARY_KEYS } from "../types.js";
import { ADDED_COLUMNS, EVENTS_COLUMNS_DDL } from "./columns.js";
import type { ChExec } from "./exec.js";
import { COST_UNKNOWN, INPUT_TOKENS, OK_REQUESTS, REQUESTS } from "./sql.js";

/**
 * Where the tables live. Single node: plain tables in `database`. Cluster: each node holds `<table>_local`
 * and a `Distributed` table named `<table>` over the cluster's shards, so reads and inserts use the
 * same names either way; materialized views run on each shard's local tables.
 */
export interface Layout {
  database: string;
  cluster: string | null;
  /**
   * With a cluster, DDL either goes to every node through `ON CLUSTER` (needs ClickHouse Keeper or
   * ZooKeeper) or is run by Tollgate on each node it is given (false: no coordination service needed).
   */
  onClusterDdl: boolean;
}

interface Table {
  name: string;
  columns: string;
  engine: string;
  /** Distributed sharding expression (cluster mode). */
  shardBy: string;
}

const SUMMARY_KEY_COLUMNS = ["workspace_id", "day", ...SUMMARY_KEYS];
const LOW_KEYS: ReadonlySet<string> = new Set(
  SUMMARY_KEYS.filter((k) => k !== "customer_id" && k !== "user_id"),
);

/** The schema, table by table (every table is created IF NOT EXISTS, so opening is idempotent). */
const TABLES: Table[] = [
  {
    name: "events",
    columns: EVENTS_COLUMNS_DDL,
    // Ordered for the common filter (a workspace over a time range); a retry that slipped past the
    // insert-time check has the same sort key, so merges drop it too.
    engine:
      "ReplacingMergeTree() PARTITION BY toYYYYMM(day) ORDER BY (workspace_id, ts_start, event_id) SETTINGS index_granularity = 8192",
    shardBy: "cityHash64(workspace_id, event_id)",
  },
  {
    // Every stored (workspace, event id), kept after its event's partition is dropped so a late retry
    // of a purged call is still a duplicate; narrow and sorted by id, so a batch's check is an index seek.
    name: "event_ids",
    columns: "workspace_id LowCardinality(String), event_id String",
    engine: "ReplacingMergeTree() ORDER BY (workspace_id, event_id)",
    shardBy: "cityHash64(workspace_id, event_id)",
  },
  {
    // Daily sums per attribution of every call, kept up on insert by a materialized view; reports
    // read it for days whose raw partitions were dropped. '' stands for none in the keys.
    name: "daily_summary",
    columns: [
      "workspace_id LowCardinality(String)",
      "day Date",
      ...SUMMARY_KEYS.map((k) => `${k} ${LOW_KEYS.has(k) ? "LowCardinality(String)" : "String"}`),
      "calls UInt64",
      "requests UInt64",
      "ok_requests UInt64",
      // Named apart from the events columns they sum: 18.16 resolves aliases across a view's query.
      "cost_sum Int64",
      "input_sum Int64",
      "output_sum Int64",
      "unpriced_calls UInt64",
    ].join(",\n  "),
    engine: `SummingMergeTree() PARTITION BY toYYYYMM(day) ORDER BY (${SUMMARY_KEY_COLUMNS.join(", ")})`,
    shardBy: "cityHash64(workspace_id, user_id)",
  },
  {
    name: "workspaces",
    columns: "id String, created_at Int64",
    engine: "ReplacingMergeTree() ORDER BY id",
    shardBy: "cityHash64(id)",
  },
  {
    // Rows are versions: a revocation is a newer version of the key; readers take the latest.
    name: "api_keys",
    columns:
      "id String, workspace_id String, role String, hash String, label String, created_at Int64, defaults String, revoked_at Nullable(Int64), version UInt64",
    engine: "ReplacingMergeTree(version) ORDER BY id",
    shardBy: "cityHash64(id)",
  },
  {
    name: "policies",
    columns:
      "workspace_id String, kind String, id String, spec String, updated_at Int64, updated_by String, deleted UInt8, version UInt64",
    engine: "ReplacingMergeTree(version) ORDER BY (workspace_id, kind, id)",
    shardBy: "cityHash64(workspace_id)",
  },
  {
    name: "policy_audit",
    columns:
      "ts Int64, workspace_id String, kind String, id String, action String, actor String, before String, after String",
    engine: "MergeTree() ORDER BY (workspace_id, ts)",
    shardBy: "cityHash64(workspace_id)",
  },
  {
    name: "limit_events",
    columns:
      "ts Int64, workspace_id String, type String, subject String, bucket Nullable(String), from_state Nullable(String), to_state Nullable(String), spend_nanousd Nullable(Int64), limit_nanousd Nullable(Int64), event_id Nullable(String), request_id Nullable(String), detail Nullable(String)",
    engine: "MergeTree() ORDER BY (workspace_id, ts)",
    shardBy: "cityHash64(workspace_id)",
  },
  {
    // How far back raw events and summaries go per workspace, after purges (latest version wins).
    name: "retention",
    columns:
      "workspace_id String, raw_available_from Nullable(Int64), summary_available_from Nullable(Int64), version UInt64",
    engine: "ReplacingMergeTree(version) ORDER BY workspace_id",
    shardBy: "cityHash64(workspace_id)",
  },
];

/** Tables whose rows are kept in one place even in a cluster: small, and read whole. */
export const TABLE_NAMES = TABLES.map((t) => t.name);

/** The table a statement reads or inserts (the Distributed one in a cluster). */
export const qualified = (l: Layout, table: string) => `${l.database}.${table}`;
/** The shard-local table (itself on a single node): partitions are dropped here. */
export const localTable = (l: Layout, table: string) =>
  `${l.database}.${l.cluster ? `${table}_local` : table}`;

const onCluster = (l: Layout) => (l.cluster && l.onClusterDdl ? ` ON CLUSTER ${l.cluster}` : "");

/** The statements that create the schema, in order. */
export function tablesDdl(l: Layout): string[] {
  const out = [`CREATE DATABASE IF NOT EXISTS ${l.database}${onCluster(l)}`];
  for (const t of TABLES) {
    out.push(
      `CREATE TABLE IF NOT EXISTS ${localTable(l, t.name)}${onCluster(l)} (\n  ${t.columns}\n) ENGINE = ${t.engine}`,
    );
    if (l.cluster)
      out.push(
        `CREATE TABLE IF NOT EXISTS ${qualified(l, t.name)}${onCluster(l)} AS ${localTable(l, t.name)} ENGINE = Distributed(${l.cluster}, ${l.database}, ${t.name}_local, ${t.shardBy})`,
      );
  }
  return out;
}

/**
 * The materialized views over the events table: made once its columns are all there (see
 * addMissingColumns), as ClickHouse checks a view's query against the table even when the view exists.
 */
export function viewsDdl(l: Layout): string[] {
  const out: string[] = [];
  const events = localTable(l, "events");
  out.push(
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${l.database}.event_ids_mv${onCluster(l)} TO ${localTable(l, "event_ids")} AS SELECT workspace_id, event_id FROM ${events}`,
  );
  const keys = SUMMARY_KEYS.join(", ");
  out.push(
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${l.database}.daily_summary_mv${onCluster(l)} TO ${localTable(l, "daily_summary")} AS
     SELECT workspace_id, day, ${keys}, count() AS calls, ${REQUESTS} AS requests, ${OK_REQUESTS} AS ok_requests,
            sum(cost_nanousd) AS cost_sum, sum(${INPUT_TOKENS}) AS input_sum, sum(output_tokens) AS output_sum,
            countIf(${COST_UNKNOWN}) AS unpriced_calls
     FROM ${events} GROUP BY workspace_id, day, ${keys}`,
  );
  return out;
}

/**
 * Gives an events table made before ADDED_COLUMNS the columns it lacks, on the node given (the shard-local
 * table, then the Distributed one over it). A table made by this version has them all: nothing to do.
 */
export async function addMissingColumns(node: ChExec, l: Layout): Promise<void> {
  const tables = l.cluster ? ["events_local", "events"] : ["events"];
  for (const table of tables) {
    const present = await node.rows<{ name: string }>(
      `SELECT name FROM system.columns WHERE database = '${l.database}' AND table = '${table}'`,
    );
    const have = new Set(present.map((c) => c.name));
    for (const [name, ddl] of ADDED_COLUMNS) {
      if (have.has(name)) continue;
      try {
        await node.command(`ALTER TABLE ${l.database}.${table}${onCluster(l)} ADD COLUMN ${ddl}`);
      } catch (e) {
        // Another replica starting at the same time added it first (a rolling deploy): what was wanted.
        if (!/already exists/i.test((e as Error).message)) throw e;
      }
    }
  }
}
