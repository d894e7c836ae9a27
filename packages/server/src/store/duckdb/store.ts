import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import type { CallRecord } from "@tollgate/core";
import type {
  ApiKeyRecord,
  AppendResult,
  EventFilter,
  EventStore,
  KeyStore,
  Role,
  SpendDimension,
  SpendRow,
  UnpricedRow,
} from "../types.js";
import { appendRecord, rowToRecord, SELECT_RECORD } from "./columns.js";
import { openDuckDb } from "./open.js";
import { whereClause } from "./sql.js";

const INPUT_TOKENS =
  "input_uncached_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens + input_audio_tokens + image_tokens";

/** The embedded default: one DuckDB file per data dir, one connection, writes serialized. */
export class DuckDbStore implements EventStore, KeyStore {
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
  ) {}

  static async open(dataDir: string): Promise<DuckDbStore> {
    const { instance, conn } = await openDuckDb(dataDir);
    const store = new DuckDbStore(instance, conn);
    await conn.run("CREATE TEMP TABLE staging AS SELECT * FROM events LIMIT 0");
    return store;
  }

  /** DuckDB allows one transaction per connection at a time: everything goes through this queue. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  append(records: readonly CallRecord[]): Promise<AppendResult> {
    if (records.length === 0) return Promise.resolve({ inserted: new Set() });
    return this.#serial(async () => {
      const c = this.conn;
      await c.run("BEGIN TRANSACTION");
      try {
        const appender = await c.createAppender("staging", "main", "temp");
        for (const r of records) appendRecord(appender, r);
        appender.closeSync();
        // The primary key makes idempotency the database's job: a retried batch inserts nothing twice.
        const res = await c.runAndReadAll(
          "INSERT INTO events SELECT * FROM staging ON CONFLICT DO NOTHING RETURNING event_id",
        );
        await c.run("DELETE FROM staging");
        await c.run("COMMIT");
        return { inserted: new Set(res.getColumnsJS()[0] as string[] | undefined) };
      } catch (e) {
        await c.run("ROLLBACK").catch(() => {});
        await c.run("DELETE FROM staging").catch(() => {});
        throw e;
      }
    });
  }

  async query(filter: EventFilter & { limit?: number }): Promise<CallRecord[]> {
    const { sql, params } = whereClause(filter);
    const limit = Math.min(Math.max(filter.limit ?? 1000, 1), 100_000);
    const res = await this.#serial(() =>
      this.conn.runAndReadAll(`SELECT ${SELECT_RECORD} FROM events WHERE ${sql} ORDER BY ts_start, event_id LIMIT ${limit}`, params),
    );
    return res.getRowObjectsJS().map((r) => rowToRecord(r as Record<string, unknown>));
  }

  async spend(filter: EventFilter, by: SpendDimension): Promise<SpendRow[]> {
    const { sql, params } = whereClause(filter);
    const key = by === "day" ? "strftime(date_trunc('day', ts_start), '%Y-%m-%d')" : by;
    const order = by === "day" ? "group_key" : "cost_sum DESC, group_key";
    const res = await this.#serial(() =>
      this.conn.runAndReadAll(
        `SELECT ${key} AS group_key, count(*) AS calls, sum(cost_nanousd)::HUGEINT AS cost_sum,
                sum(${INPUT_TOKENS})::HUGEINT AS input_sum, sum(output_tokens)::HUGEINT AS output_sum,
                count(*) FILTER (WHERE NOT priced) AS unpriced
         FROM events WHERE ${sql} GROUP BY group_key ORDER BY ${order}`,
        params,
      ),
    );
    return res.getRowsJS().map((r) => ({
      key: (r[0] as string | null) ?? null,
      calls: Number(r[1]),
      cost_nanousd: BigInt(r[2] as bigint),
      input_tokens: Number(r[3]),
      output_tokens: Number(r[4]),
      unpriced_calls: Number(r[5]),
    }));
  }

  async unpriced(filter: EventFilter): Promise<UnpricedRow[]> {
    const { sql, params } = whereClause(filter);
    const res = await this.#serial(() =>
      this.conn.runAndReadAll(
        `SELECT provider, model, count(*) AS calls, epoch_ms(min(ts_start)) AS first_seen, epoch_ms(max(ts_start)) AS last_seen
         FROM events WHERE ${sql} AND NOT priced GROUP BY provider, model ORDER BY calls DESC, provider, model`,
        params,
      ),
    );
    return res.getRowsJS().map((r) => ({
      provider: r[0] as string,
      model: r[1] as string,
      calls: Number(r[2]),
      first_seen: Number(r[3]),
      last_seen: Number(r[4]),
    }));
  }

  async count(filter: EventFilter): Promise<number> {
    const { sql, params } = whereClause(filter);
    const res = await this.#serial(() => this.conn.runAndReadAll(`SELECT count(*) FROM events WHERE ${sql}`, params));
    return Number(res.getRowsJS()[0]?.[0] ?? 0);
  }

  async ensureWorkspace(id: string): Promise<void> {
    await this.#serial(() => this.conn.run("INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT DO NOTHING", [id]));
  }

  async insertKey(key: ApiKeyRecord & { hash: string }): Promise<void> {
    await this.#serial(() =>
      this.conn.run(
        "INSERT INTO api_keys (id, workspace_id, role, hash, label, created_at) VALUES ($1, $2, $3, $4, $5, make_timestamp($6::BIGINT * 1000))",
        [key.id, key.workspace_id, key.role, key.hash, key.label, key.created_at],
      ),
    );
  }

  async findKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    const res = await this.#serial(() =>
      this.conn.runAndReadAll(
        "SELECT id, workspace_id, role, label, epoch_ms(created_at) FROM api_keys WHERE hash = $1 AND revoked_at IS NULL",
        [hash],
      ),
    );
    const r = res.getRowsJS()[0];
    if (!r) return null;
    return {
      id: r[0] as string,
      workspace_id: r[1] as string,
      role: r[2] as Role,
      label: (r[3] as string | null) ?? null,
      created_at: Number(r[4]),
    };
  }

  async close(): Promise<void> {
    await this.#serial(async () => {
      await this.conn.run("CHECKPOINT").catch(() => {});
      this.conn.closeSync();
      this.instance.closeSync();
    });
  }
}
