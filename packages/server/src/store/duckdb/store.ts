import type { DuckDBInstance } from "@duckdb/node-api";
import type { CallRecord } from "@tollgate/core";
import {
  type ApiKeyRecord,
  type AppendResult,
  type EventFilter,
  type KeyDefaults,
  type Role,
  recordKey,
  type SpendDimension,
  type SpendRow,
  type Store,
  type UnpricedRow,
} from "../types.js";
import { appendIds, appendRecords, rowToRecord, SELECT_RECORD, STAGING_IDS_DDL } from "./columns.js";
import { openDuckDb } from "./open.js";
import { Lane } from "./serial.js";
import { whereClause } from "./sql.js";

const INPUT_TOKENS =
  "input_uncached_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens + input_audio_tokens + image_tokens";

/** Write lanes: a second connection fills its staging table while the first inserts and commits. */
const WRITE_LANES = 2;

/**
 * The embedded default: one DuckDB file per data dir. Reads and key lookups use one connection;
 * appends rotate over WRITE_LANES connections, each with its own id staging table, so the JavaScript side
 * of one batch overlaps DuckDB's insert and commit of the previous one. Callers must not append the
 * same event_id on two lanes at once (GroupCommitWriter guarantees it).
 */
export class DuckDbStore implements Store {
  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly reader: Lane,
    private readonly writers: Lane[],
  ) {}

  static async open(dataDir: string): Promise<DuckDbStore> {
    const { instance, conn } = await openDuckDb(dataDir);
    const writers: Lane[] = [];
    for (let i = 0; i < WRITE_LANES; i++) {
      const c = await instance.connect();
      await c.run(STAGING_IDS_DDL);
      writers.push(new Lane(c));
    }
    return new DuckDbStore(instance, new Lane(conn), writers);
  }

  /** How many appends may run at once without queueing. */
  get writeConcurrency(): number {
    return this.writers.length;
  }

  append(records: readonly CallRecord[]): Promise<AppendResult> {
    if (records.length === 0) return Promise.resolve({ inserted: new Set() });
    const lane = this.writers.reduce((a, b) => (b.pending < a.pending ? b : a));
    return lane.run(async (c) => {
      await c.run("BEGIN TRANSACTION");
      try {
        // The primary key of event_ids makes idempotency the database's job: only ids it had not
        // seen come back, and only their records are appended, in the same transaction.
        const ids = await c.createAppender("staging_ids", "main", "temp");
        appendIds(ids, records);
        ids.closeSync();
        const res = await c.runAndReadAll(
          "INSERT INTO event_ids SELECT workspace_id, event_id::UUID FROM staging_ids ON CONFLICT DO NOTHING RETURNING workspace_id, event_id::VARCHAR",
        );
        await c.run("DELETE FROM staging_ids");
        const inserted = new Set(res.getRowsJS().map(([ws, id]) => recordKey(ws as string, id as string)));
        const fresh =
          inserted.size === records.length
            ? records
            : records.filter((r) => inserted.has(recordKey(r.workspace_id, r.event_id)));
        if (fresh.length) {
          const appender = await c.createAppender("events");
          appendRecords(appender, fresh);
          appender.closeSync();
        }
        await c.run("COMMIT");
        return { inserted };
      } catch (e) {
        await c.run("ROLLBACK").catch(() => {});
        await c.run("DELETE FROM staging_ids").catch(() => {});
        throw e;
      }
    });
  }

  async query(filter: EventFilter & { limit?: number }): Promise<CallRecord[]> {
    const { sql, params } = whereClause(filter);
    const limit = Math.min(Math.max(filter.limit ?? 1000, 1), 100_000);
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT ${SELECT_RECORD} FROM events WHERE ${sql} ORDER BY ts_start, event_id LIMIT ${limit}`,
        params,
      ),
    );
    return res.getRowObjectsJS().map((r) => rowToRecord(r as Record<string, unknown>));
  }

  async spend(filter: EventFilter, by: SpendDimension): Promise<SpendRow[]> {
    const { sql, params } = whereClause(filter);
    const key = by === "day" ? "strftime(date_trunc('day', ts_start), '%Y-%m-%d')" : by;
    const order = by === "day" ? "group_key" : "cost_sum DESC, group_key";
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
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
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT provider, model, count(*) AS calls, epoch_ms(min(ts_start)) AS first_seen, epoch_ms(max(ts_start)) AS last_seen
         FROM events WHERE ${sql} AND NOT priced AND kind <> 'other' GROUP BY provider, model ORDER BY calls DESC, provider, model`,
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
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(`SELECT count(*) FROM events WHERE ${sql}`, params),
    );
    return Number(res.getRowsJS()[0]?.[0] ?? 0);
  }

  async ensureWorkspace(id: string): Promise<void> {
    await this.reader.run((conn) =>
      conn.run("INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT DO NOTHING", [id]),
    );
  }

  async insertKey(key: ApiKeyRecord & { hash: string }): Promise<void> {
    await this.reader.run((conn) =>
      conn.run(
        "INSERT INTO api_keys (id, workspace_id, role, hash, label, created_at, defaults) VALUES ($1, $2, $3, $4, $5, make_timestamp($6::BIGINT * 1000), $7)",
        [
          key.id,
          key.workspace_id,
          key.role,
          key.hash,
          key.label,
          key.created_at,
          JSON.stringify(key.defaults),
        ],
      ),
    );
  }

  async findKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        "SELECT id, workspace_id, role, label, epoch_ms(created_at), defaults FROM api_keys WHERE hash = $1 AND revoked_at IS NULL",
        [hash],
      ),
    );
    const r = res.getRowsJS()[0];
    return r ? keyFromRow(r) : null;
  }

  async listKeys(workspaceId?: string): Promise<(ApiKeyRecord & { revoked_at: number | null })[]> {
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT id, workspace_id, role, label, epoch_ms(created_at), defaults, epoch_ms(revoked_at) FROM api_keys
         ${workspaceId === undefined ? "" : "WHERE workspace_id = $1"} ORDER BY workspace_id, created_at, id`,
        workspaceId === undefined ? [] : [workspaceId],
      ),
    );
    return res.getRowsJS().map((r) => ({ ...keyFromRow(r), revoked_at: r[6] == null ? null : Number(r[6]) }));
  }

  async revokeKey(workspaceId: string, id: string): Promise<boolean> {
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        "UPDATE api_keys SET revoked_at = current_timestamp WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING id",
        [workspaceId, id],
      ),
    );
    return res.getRowsJS().length > 0;
  }

  async close(): Promise<void> {
    await Promise.all(this.writers.map((w) => w.run(async (c) => c.closeSync())));
    await this.reader.run(async (c) => {
      await c.run("CHECKPOINT").catch(() => {});
      c.closeSync();
    });
    this.instance.closeSync();
  }
}

function keyFromRow(r: unknown[]): ApiKeyRecord {
  return {
    id: r[0] as string,
    workspace_id: r[1] as string,
    role: r[2] as Role,
    label: (r[3] as string | null) ?? null,
    created_at: Number(r[4]),
    defaults: r[5] == null ? {} : (JSON.parse(r[5] as string) as KeyDefaults),
  };
}
