import {
  type DuckDBConnection,
  type DuckDBInstance,
  DuckDBTimestampValue,
  listValue,
} from "@duckdb/node-api";
import { type CallRecord, PRICE_REF_NO_USAGE, STREAM_OPTIONS_REFUSED } from "@tollgate/core/fields";
import { DAY_MS, utcMidnight } from "../../time.js";
import { byCostThenKey, mergeSpend, workspaceRows } from "../rows.js";
import {
  type AgentRunRollupRow,
  type ApiKeyRecord,
  type AppendResult,
  type CostSumRow,
  type EventFilter,
  type JsonRows,
  type KeyDefaults,
  type LimitEventRow,
  type PolicyAuditRow,
  type PolicyKind,
  type PolicyRow,
  type QueryCursor,
  type Retention,
  type Role,
  type RunUsageRow,
  recordKey,
  type SegmentDimension,
  type SegmentRow,
  type SpendDimension,
  type SpendRow,
  type Store,
  SUM_FIELDS,
  type SumField,
  summaryCanAnswer,
  type TraceSpan,
  type UnpricedRow,
  type UserDayRow,
  type WorkspaceRow,
} from "../types.js";
import { agentRuns, firstSeen, segmentSets, userDays, userDaysOf } from "./analytics.js";
import { appendInSlices, appendWith, isDuplicateKey } from "./appender.js";
import { CheckpointPacer, type CheckpointPacerOptions, checkpointWalBytesFrom } from "./checkpoint-pacer.js";
import {
  appendColumns,
  appendIds,
  fromColumns,
  type RecordColumns,
  rowToRecord,
  SELECT_RECORD,
  STAGING_IDS_DDL,
  toColumns,
} from "./columns.js";
import { jsonRowSql } from "./json-rows.js";
import { openDuckDb } from "./open.js";
import { MAX_OPEN_DAY_SUMS, OpenDaySums } from "./open-days.js";
import {
  addLateCalls,
  closeDays,
  closedBefore,
  daysCanServe,
  firstSeenFromDays,
  mergeSegments,
  planDays,
  STAGING_SUMMARY_DDL,
  segmentsFromDays,
  summedInDays,
  userDaysCanServe,
  userDaysSource,
} from "./segment-days.js";
import { Gate, Lane, Mutex } from "./serial.js";
import { COST_UNKNOWN, INPUT_TOKENS, pageClause, RUN_LLM_CALL, UTC_DAY, whereClause } from "./sql.js";
import {
  purge,
  retentionOf,
  spendFromSummary,
  spendRow,
  WORKSPACE_HOLDS_CALLS,
  WORKSPACES_WITH_CALLS,
} from "./summary.js";

const MODEL_ASKED = "coalesce(model_requested, model)";

/** How often days that ended are summed into segment_days. */
const CLOSE_EVERY_MS = 3_600_000;
/** Ids looked up per query by storedIds. */
const ID_CHECK_CHUNK = 10_000;

/** Write lanes: a second connection fills its staging table while the first inserts and commits. */
const WRITE_LANES = 2;

/**
 * The embedded default: one DuckDB file per data dir. Reads and key lookups use one connection;
 * appends rotate over WRITE_LANES connections, each with its own id staging table, so the JavaScript side
 * of one batch overlaps DuckDB's insert and commit of the previous one. Callers must not append the
 * same event_id on two lanes at once (GroupCommitWriter guarantees it).
 */
export class DuckDbStore implements Store {
  readonly #retention = new Map<string, Promise<Retention>>();
  /** Days before this are summed in segment_days (null: none yet); changed only under the exclusive gate. */
  #closedBefore: number | null = null;
  #rowsPerAppender = Number.POSITIVE_INFINITY;
  /** Appends share it; closing days and purging take it alone, so no append straddles them. */
  readonly #gate = new Gate();
  /** Appends that add late calls to segment_days run one at a time (DuckDB rejects concurrent updates of a row). */
  readonly #late = new Mutex();
  /** The open days' calls summed in memory (null: not kept, or no day closed yet); swapped only under the exclusive gate. */
  #openDays: OpenDaySums | null = null;
  /** How many sums #openDays may hold; null: not kept. */
  #openDaySumsMax: number | null = MAX_OPEN_DAY_SUMS;
  #closer: ReturnType<typeof setInterval> | null = null;
  #pacer: CheckpointPacer | null = null;
  /** Its own connection: a checkpoint takes a second or so and must not hold up reads or appends. */
  #checkpointer: Lane | null = null;
  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly reader: Lane,
    private readonly writers: Lane[],
  ) {}

  /**
   * `closeDaysAtOpen: false` leaves summing closed days to the first `closeDays()` call (tests, benches);
   * `openDaySums: false` answers every spend question from the raw calls (no in-memory open-day sums);
   * `maxOpenDaySums` bounds how many they may hold (default MAX_OPEN_DAY_SUMS); `checkpoints` paces
   * checkpoints of a slowly growing WAL (CheckpointPacer); `rowsPerAppender` bounds the rows one Appender
   * writes, synchronously on the calling thread (appendInSlices: for a store on the gateway's event loop).
   */
  static async open(
    dataDir: string,
    opts: {
      closeDaysAtOpen?: boolean;
      openDaySums?: boolean;
      maxOpenDaySums?: number;
      checkpoints?: CheckpointPacerOptions;
      rowsPerAppender?: number;
    } = {},
  ): Promise<DuckDbStore> {
    // Read before anything is opened: a bad setting leaves nothing behind.
    const checkpoints = { minWalBytes: checkpointWalBytesFrom(), ...opts.checkpoints };
    const { instance, conn, file } = await openDuckDb(dataDir);
    const writers: Lane[] = [];
    for (let i = 0; i < WRITE_LANES; i++) {
      const c = await instance.connect();
      for (const ddl of [STAGING_IDS_DDL, ...STAGING_SUMMARY_DDL]) await c.run(ddl);
      writers.push(new Lane(c));
    }
    const store = new DuckDbStore(instance, new Lane(conn), writers);
    store.#rowsPerAppender = opts.rowsPerAppender ?? Number.POSITIVE_INFINITY;
    store.#closedBefore = await closedBefore(conn);
    store.#openDaySumsMax = opts.openDaySums === false ? null : (opts.maxOpenDaySums ?? MAX_OPEN_DAY_SUMS);
    if (opts.closeDaysAtOpen !== false) await store.closeDays();
    store.#closer = setInterval(() => void store.closeDays().catch(() => {}), CLOSE_EVERY_MS);
    store.#closer.unref();
    const checkpointer = new Lane(await instance.connect());
    store.#checkpointer = checkpointer;
    store.#pacer = new CheckpointPacer(
      `${file}.wal`,
      // Alone: an append during a checkpoint waits for it inside DuckDB, and an in-process store's Appender
      // waits on the event loop (the gateway froze for up to 384 ms); behind the gate it waits as a promise.
      () => store.#gate.exclusive(() => checkpointer.run((c) => c.run("CHECKPOINT"))).then(() => {}),
      checkpoints,
    );
    return store;
  }

  /**
   * Sums the records the rollups read (summedInDays) of the UTC days before `now`'s day that are not summed
   * yet into segment_days. Runs at open and hourly; the first run sums all history, later ones the day that
   * ended.
   */
  async closeDays(now = Date.now()): Promise<void> {
    const before = utcMidnight(now);
    await this.#gate.exclusive(() =>
      this.reader.run(async (conn) => {
        const from = this.#closedBefore;
        if (from === null || before > from) {
          await this.writers[0]!.run((c) => closeDays(c, from, before));
          this.#closedBefore = before;
        }
        await this.#followOpenDays(conn, this.#closedBefore ?? before);
      }),
    );
  }

  /**
   * Makes the open-day sums start at `from` (the first day not closed): kept days move on, and the sums are
   * loaded when there are none (or they overflowed and a day closed since, so the new day may fit). Runs
   * under the exclusive gate.
   */
  async #followOpenDays(conn: DuckDBConnection, from: number): Promise<void> {
    const max = this.#openDaySumsMax;
    if (max === null) return;
    const kept = this.#openDays;
    // Sums already from this day stay as they are; dropped ones stay dropped until a day closes.
    if (kept?.from === from) return;
    this.#openDays =
      kept && !kept.overflowed && kept.from < from
        ? kept.closeBefore(from)
        : await OpenDaySums.load(conn, from, max);
  }

  /** The in-memory sums of the open days' calls, when kept (for diagnostics and tests). */
  get openDaySums(): OpenDaySums | null {
    return this.#openDays;
  }

  /** The data dir's lock makes this process its only user. */
  readonly shared = false;

  /** How many appends may run at once without queueing. */
  get writeConcurrency(): number {
    return this.writers.length;
  }

  append(records: readonly CallRecord[]): Promise<AppendResult> {
    return this.#append(records, toColumns(records));
  }

  /** append() of a batch already in columns (from another thread): records are built back here. */
  appendColumns(cols: RecordColumns): Promise<AppendResult> {
    return this.#append(fromColumns(cols), cols);
  }

  #append(records: readonly CallRecord[], cols: RecordColumns): Promise<AppendResult> {
    if (records.length === 0) return Promise.resolve({ inserted: new Set() });
    return this.#gate.shared(() => {
      const lane = this.writers.reduce((a, b) => (b.pending < a.pending ? b : a));
      return lane.run((c) => {
        const closed = this.#closedBefore;
        const late = closed === null ? [] : records.filter((r) => r.ts_start < closed && summedInDays(r));
        return late.length
          ? this.#late.run(() => this.#appendOn(c, records, cols, late))
          : this.#appendOn(c, records, cols, late);
      });
    });
  }

  /**
   * One batch in one transaction; `late` (closed days' records, summedInDays) are also added to segment_days.
   * The primary key of event_ids makes idempotency the database's job. Nearly every batch is all new, so
   * its ids go straight into event_ids, whose key refuses the whole append if any was stored before; only
   * then does a second transaction sort the new records out. That second step (staging the ids and
   * INSERT … ON CONFLICT DO NOTHING RETURNING) took twice the CPU of the direct append.
   */
  async #appendOn(
    c: DuckDBConnection,
    records: readonly CallRecord[],
    cols: RecordColumns,
    late: CallRecord[],
  ): Promise<AppendResult> {
    const keys = records.map((r) => recordKey(r.workspace_id, r.event_id));
    const allNew = await inTransaction(c, async () => {
      try {
        await appendInSlices(c, "event_ids", { total: cols.rows }, this.#rowsPerAppender, (a, only) =>
          appendIds(a, cols, only),
        );
      } catch (e) {
        if (isDuplicateKey(e)) return false;
        throw e;
      }
      await appendFresh(c, cols, undefined, late, this.#rowsPerAppender);
      return true;
    });
    if (allNew) {
      this.#openDays?.add(records);
      return { inserted: new Set(keys) };
    }
    const inserted = await inTransaction(c, async () => {
      const fresh = await newIds(c, cols);
      const only = keys.flatMap((k, i) => (fresh.has(k) ? [i] : []));
      if (only.length)
        await appendFresh(
          c,
          cols,
          only,
          late.filter((r) => fresh.has(recordKey(r.workspace_id, r.event_id))),
          this.#rowsPerAppender,
        );
      return fresh;
    });
    this.#openDays?.add(records.filter((_, i) => inserted.has(keys[i]!)));
    return { inserted };
  }

  async findEvent(workspaceId: string, eventId: string): Promise<CallRecord | null> {
    // A scan of the id column, cheap with DuckDB's zone maps: v7 ids arrive roughly in order.
    const [rec] = await this.query({ workspaceId, where: { event_id: eventId }, limit: 1 });
    return rec ?? null;
  }

  async storedIds(workspaceId: string, eventIds: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let at = 0; at < eventIds.length; at += ID_CHECK_CHUNK) {
      // Ids are UUIDs (the record schema says so): one list parameter, split in SQL, looked up in the id index.
      // One that is not (a damaged spooled line that still parses) names no stored call: it fails no lookup.
      const ids = eventIds.slice(at, at + ID_CHECK_CHUNK).join(",");
      const res = await this.reader.run((conn) =>
        conn.runAndReadAll(
          `SELECT event_id::VARCHAR FROM event_ids WHERE workspace_id = $1
             AND event_id IN (SELECT TRY_CAST(unnest(string_split($2, ',')) AS UUID))`,
          [workspaceId, ids],
        ),
      );
      for (const [id] of res.getRowsJS()) out.add(id as string);
    }
    return out;
  }

  async traceSpans(
    workspaceId: string,
    traceIds: readonly string[],
    from: number,
    to: number,
  ): Promise<TraceSpan[]> {
    if (!traceIds.length) return [];
    const { sql, params } = whereClause({ workspaceId, from, to });
    params.push(listValue([...traceIds]));
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT event_id, trace_id, span_id, parent_span_id, kind, usage_raw, priced FROM events
         WHERE ${sql} AND trace_id IN (SELECT unnest($${params.length}))`,
        params,
      ),
    );
    type Row = Record<Exclude<keyof TraceSpan, "priced">, string | null> & { priced: boolean };
    return (res.getRowObjectsJS() as Row[]).map(
      (r) => ({ ...r, usage_raw: r.usage_raw === null ? null : JSON.parse(r.usage_raw) }) as TraceSpan,
    );
  }

  async query(filter: EventFilter & { limit?: number; after?: QueryCursor }): Promise<CallRecord[]> {
    const { sql, params, limit } = pageClause(filter);
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT ${SELECT_RECORD} FROM events WHERE ${sql} ORDER BY ts_start, event_id LIMIT ${limit}`,
        params,
      ),
    );
    return res.getRowObjectsJS().map((r) => rowToRecord(r as Record<string, unknown>));
  }

  async queryJson(
    filter: EventFilter & { limit?: number; after?: QueryCursor },
    fields: readonly (keyof CallRecord)[],
  ): Promise<JsonRows> {
    const { sql, params, limit } = pageClause(filter);
    // The page is found by its sort keys alone, then only its rows are read whole and written as JSON by
    // DuckDB, into one text: sorting whole rows and reading each into a JS object took most of an export's
    // time, and a string per row most of what was left (the store thread's garbage).
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT string_agg(${jsonRowSql(fields)}, ',' ORDER BY ts_start, event_id), count(*),
                epoch_ms(max(ts_start)), arg_max(event_id, (ts_start, event_id))
         FROM events
         WHERE rowid IN (SELECT rowid FROM events WHERE ${sql} ORDER BY ts_start, event_id LIMIT ${limit})`,
        params,
      ),
    );
    const [json, rows, ts, id] = res.getRowsJS()[0]!;
    return {
      json: (json as string | null) ?? "",
      rows: Number(rows),
      last: id === null ? null : { ts: Number(ts), id: id as string },
    };
  }

  /**
   * Spend by one dimension. Where the window reaches back past the raw retention horizon, the purged
   * calls come from the daily summary (whole UTC days), when the filter only uses summary keys.
   */
  async spend(filter: EventFilter, by: SpendDimension): Promise<SpendRow[]> {
    const r = await this.retention(filter.workspaceId);
    const horizon = r.raw_available_from;
    if (horizon === null || (filter.from !== undefined && filter.from >= horizon))
      return this.#openDays?.spend(filter, by) ?? this.#rawSpend(filter, by);
    // Raw events older than the horizon are late arrivals not yet rolled up: they count too.
    const raw = await this.#rawSpend(filter, by);
    if (!summaryCanAnswer(filter)) return raw;
    const fromDay = utcMidnight(filter.from ?? 0);
    const toDay = Math.min(horizon, Math.ceil((filter.to ?? horizon) / DAY_MS) * DAY_MS);
    const old = await this.reader.run((conn) => spendFromSummary(conn, filter, by, fromDay, toDay));
    return mergeSpend(old, raw, by);
  }

  /**
   * Horizons are read once per workspace and kept: only purge() changes them, and DuckDB's file lock
   * makes this store the only writer of its data dir.
   */
  retention(workspaceId: string): Promise<Retention> {
    let r = this.#retention.get(workspaceId);
    if (!r) {
      r = this.reader.run((conn) => retentionOf(conn, workspaceId));
      r.catch(() => this.#retention.delete(workspaceId));
      this.#retention.set(workspaceId, r);
    }
    return r;
  }

  async purge(rawBefore: number | null, summaryBefore: number | null) {
    try {
      return await this.#gate.exclusive(async () => {
        const purged = await this.writers[0]!.run((c) => purge(c, rawBefore, summaryBefore));
        const open = this.#openDays;
        // Raw calls of open days went too: sum what is left.
        if (open && rawBefore !== null && rawBefore > open.from)
          this.#openDays = await this.reader.run((conn) => OpenDaySums.load(conn, open.from, open.max));
        return purged;
      });
    } finally {
      this.#retention.clear();
    }
  }

  async #rawSpend(filter: EventFilter, by: SpendDimension): Promise<SpendRow[]> {
    const { sql, params } = whereClause(filter);
    const key = by === "day" ? UTC_DAY : by;
    const order = by === "day" ? "group_key" : "cost_sum DESC, group_key";
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT ${key} AS group_key, count(*) AS calls, sum(cost_nanousd)::HUGEINT AS cost_sum,
                sum(${INPUT_TOKENS})::HUGEINT AS input_sum, sum(output_tokens)::HUGEINT AS output_sum,
                count(*) FILTER (WHERE ${COST_UNKNOWN}) AS unpriced
         FROM events WHERE ${sql} GROUP BY group_key ORDER BY ${order}`,
        params,
      ),
    );
    return res.getRowsJS().map(spendRow);
  }

  /** Whole closed days come from segment_days when the question allows it; the rest from raw calls. */
  segments(
    filter: EventFilter,
    dims: readonly SegmentDimension[],
    users: boolean,
  ): Promise<Record<SegmentDimension, SegmentRow[]>> {
    return this.reader.run(async (conn) => {
      const plan = daysCanServe(filter, dims, users) ? planDays(filter, this.#closedBefore) : null;
      if (!plan) return segmentSets(conn, filter, dims, users);
      const parts = [await segmentsFromDays(conn, filter, dims, plan.fromDay, plan.toDay)];
      for (const f of plan.raw) parts.push(await segmentSets(conn, f, dims, false));
      const merged = mergeSegments(parts, dims);
      for (const d of dims) merged[d].sort(byCostThenKey);
      return merged;
    });
  }

  firstSeen(
    filter: EventFilter,
    by: SegmentDimension,
    since: number,
  ): Promise<{ key: string; first_seen: number }[]> {
    return this.reader.run(async (conn) => {
      const plan = daysCanServe(filter, [by], false) ? planDays(filter, this.#closedBefore) : null;
      if (!plan) return firstSeen(conn, filter, by, since);
      const first = new Map<string, number>();
      const parts = [await firstSeenFromDays(conn, filter, by, plan.fromDay, plan.toDay)];
      for (const f of plan.raw) parts.push(await firstSeen(conn, f, by, 0));
      for (const p of parts)
        for (const r of p) first.set(r.key, Math.min(first.get(r.key) ?? r.first_seen, r.first_seen));
      return [...first]
        .filter(([, t]) => t >= since)
        .map(([key, first_seen]) => ({ key, first_seen }))
        .sort((a, b) => a.first_seen - b.first_seen || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    });
  }

  /** Whole closed days come from user_days when the filter allows it (days never span two parts). */
  userDays(filter: EventFilter, top: number): Promise<UserDayRow[]> {
    return this.reader.run(async (conn) => {
      const plan = userDaysCanServe(filter) ? planDays(filter, this.#closedBefore) : null;
      if (!plan) return userDays(conn, filter, top);
      const { sql, params } = userDaysSource(filter, plan.fromDay, plan.toDay);
      const parts = [await userDaysOf(conn, sql, params, top)];
      for (const f of plan.raw) parts.push(await userDays(conn, f, top));
      return parts.flat().sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0));
    });
  }

  agentRuns(filter: EventFilter): Promise<AgentRunRollupRow[]> {
    return this.reader.run((conn) => agentRuns(conn, filter));
  }

  async unpriced(filter: EventFilter): Promise<UnpricedRow[]> {
    const { sql, params } = whereClause(filter);
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT provider, model, count(*) AS calls, epoch_ms(min(ts_start)) AS first_seen, epoch_ms(max(ts_start)) AS last_seen
         FROM events WHERE ${sql} AND ${COST_UNKNOWN} AND price_ref <> '${PRICE_REF_NO_USAGE}' GROUP BY provider, model ORDER BY calls DESC, provider, model`,
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

  async workspaces(): Promise<WorkspaceRow[]> {
    const ids = (sql: string) =>
      this.reader.run(async (conn) => (await conn.runAndReadAll(sql)).getRowsJS().map((r) => r[0] as string));
    return workspaceRows(await ids("SELECT id FROM workspaces"), await ids(WORKSPACES_WITH_CALLS));
  }

  async workspace(id: string): Promise<WorkspaceRow | null> {
    const sql = `SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1), ${WORKSPACE_HOLDS_CALLS}`;
    const res = await this.reader.run((conn) => conn.runAndReadAll(sql, [id]));
    const [made, calls] = res.getRowsJS()[0] as [boolean, boolean];
    return made || calls ? { id, calls } : null;
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

  async listPolicies(workspaceId?: string): Promise<PolicyRow[]> {
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT workspace_id, kind, id, spec, epoch_ms(updated_at), updated_by FROM policies
         ${workspaceId === undefined ? "" : "WHERE workspace_id = $1"} ORDER BY workspace_id, kind, id`,
        workspaceId === undefined ? [] : [workspaceId],
      ),
    );
    return res.getRowsJS().map(policyFromRow);
  }

  putPolicy(row: PolicyRow): Promise<PolicyRow | null> {
    return this.#changePolicy(row.workspace_id, row.kind, row.id, row.updated_by, row);
  }

  deletePolicy(workspaceId: string, kind: PolicyKind, id: string, actor: string): Promise<PolicyRow | null> {
    return this.#changePolicy(workspaceId, kind, id, actor, null);
  }

  /** Upsert or delete plus its audit row, in one transaction: a policy never changes unaudited. */
  #changePolicy(
    ws: string,
    kind: PolicyKind,
    id: string,
    actor: string,
    next: PolicyRow | null,
  ): Promise<PolicyRow | null> {
    return this.reader.run(async (conn) => {
      await conn.run("BEGIN TRANSACTION");
      try {
        const res = await conn.runAndReadAll(
          "SELECT workspace_id, kind, id, spec, epoch_ms(updated_at), updated_by FROM policies WHERE workspace_id = $1 AND kind = $2 AND id = $3",
          [ws, kind, id],
        );
        const before = res.getRowsJS().map(policyFromRow)[0] ?? null;
        if (!next && !before) {
          await conn.run("ROLLBACK");
          return null;
        }
        await conn.run("DELETE FROM policies WHERE workspace_id = $1 AND kind = $2 AND id = $3", [
          ws,
          kind,
          id,
        ]);
        if (next)
          await conn.run(
            "INSERT INTO policies VALUES ($1, $2, $3, $4, make_timestamp($5::BIGINT * 1000), $6)",
            [ws, kind, id, JSON.stringify(next.spec), next.updated_at, actor],
          );
        await conn.run(
          "INSERT INTO policy_audit VALUES (make_timestamp($1::BIGINT * 1000), $2, $3, $4, $5, $6, $7, $8)",
          [
            next?.updated_at ?? Date.now(),
            ws,
            kind,
            id,
            next ? (before ? "update" : "create") : "delete",
            actor,
            before ? JSON.stringify(before.spec) : null,
            next ? JSON.stringify(next.spec) : null,
          ],
        );
        await conn.run("COMMIT");
        return before;
      } catch (e) {
        await conn.run("ROLLBACK").catch(() => {});
        throw e;
      }
    });
  }

  async policyAudit(workspaceId: string, kind?: PolicyKind, id?: string): Promise<PolicyAuditRow[]> {
    const params: string[] = [workspaceId];
    let where = "workspace_id = $1";
    if (kind) where += ` AND kind = $${params.push(kind)}`;
    if (id) where += ` AND id = $${params.push(id)}`;
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT epoch_ms(ts), workspace_id, kind, id, action, actor, before, after FROM policy_audit WHERE ${where} ORDER BY ts, id`,
        params,
      ),
    );
    return res.getRowsJS().map((r) => ({
      ts: Number(r[0]),
      workspace_id: r[1] as string,
      kind: r[2] as PolicyKind,
      id: r[3] as string,
      action: r[4] as PolicyAuditRow["action"],
      actor: r[5] as string,
      before: r[6] == null ? null : JSON.parse(r[6] as string),
      after: r[7] == null ? null : JSON.parse(r[7] as string),
    }));
  }

  async appendLimitEvents(rows: LimitEventRow[]): Promise<void> {
    if (!rows.length) return;
    // Shared like any append: a paced checkpoint (exclusive) would otherwise hold its Appender's close.
    await this.#gate.shared(() =>
      this.reader.run((conn) =>
        // Flushes in autocommit: the events are durable when this resolves.
        appendWith(conn, "limit_events", (a) => {
          for (const r of rows) {
            a.appendTimestamp(new DuckDBTimestampValue(BigInt(r.ts) * 1000n));
            a.appendVarchar(r.workspace_id);
            a.appendVarchar(r.type);
            a.appendVarchar(r.subject);
            for (const v of [r.bucket, r.from_state, r.to_state])
              v === null ? a.appendNull() : a.appendVarchar(v);
            for (const v of [r.spend_nanousd, r.limit_nanousd])
              v === null ? a.appendNull() : a.appendBigInt(v);
            for (const v of [r.event_id, r.request_id]) v === null ? a.appendNull() : a.appendVarchar(v);
            r.detail === null ? a.appendNull() : a.appendVarchar(JSON.stringify(r.detail));
            a.endRow();
          }
        }),
      ),
    );
  }

  async limitEvents(
    workspaceId: string,
    opts: { from?: number; type?: string; subject?: string; limit?: number },
  ): Promise<LimitEventRow[]> {
    const params: (string | number)[] = [workspaceId];
    let where = "workspace_id = $1";
    if (opts.from !== undefined)
      where += ` AND ts >= make_timestamp($${params.push(opts.from)}::BIGINT * 1000)`;
    if (opts.type) where += ` AND type = $${params.push(opts.type)}`;
    if (opts.subject) where += ` AND subject = $${params.push(opts.subject)}`;
    const limit = Math.min(Math.max(opts.limit ?? 1000, 1), 100_000);
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT epoch_ms(ts), workspace_id, type, subject, bucket, from_state, to_state, spend_nanousd, limit_nanousd,
                event_id, request_id, detail FROM limit_events WHERE ${where} ORDER BY ts, subject LIMIT ${limit}`,
        params,
      ),
    );
    return res.getRowsJS().map((r) => ({
      ts: Number(r[0]),
      workspace_id: r[1] as string,
      type: r[2] as LimitEventRow["type"],
      subject: r[3] as string,
      bucket: (r[4] as string | null) ?? null,
      from_state: (r[5] as string | null) ?? null,
      to_state: (r[6] as string | null) ?? null,
      spend_nanousd: r[7] == null ? null : BigInt(r[7] as bigint),
      limit_nanousd: r[8] == null ? null : BigInt(r[8] as bigint),
      event_id: (r[9] as string | null) ?? null,
      request_id: (r[10] as string | null) ?? null,
      detail: r[11] == null ? null : JSON.parse(r[11] as string),
    }));
  }

  async sumCost(
    filter: EventFilter & { tag?: string },
    by: readonly SumField[],
    hourly: boolean,
  ): Promise<CostSumRow[]> {
    // "model" in a limit's scope is the model a call asked for (the gateway checks before the reply).
    const { model, ...fixed } = filter.where ?? {};
    const { sql, params } = whereClause({ ...filter, where: fixed });
    let where = sql;
    if (model !== undefined) {
      params.push(model);
      where += ` AND ${MODEL_ASKED} = $${params.length}`;
    }
    if (filter.tag !== undefined) {
      // Tags are stored as JSON text: its quoted form inside that text is a quick first cut, but not the
      // answer (the tag b is inside ["a\",\"b"], the one tag a","b): the parsed list says.
      params.push(JSON.stringify(filter.tag), filter.tag);
      where += ` AND contains(coalesce(tags, ''), $${params.length - 1}) AND list_contains(from_json(tags, '["VARCHAR"]'), $${params.length}::VARCHAR)`;
    }
    for (const f of by)
      if (!(SUM_FIELDS as readonly string[]).includes(f)) throw new Error(`not a sum field: ${f}`);
    const keys = [
      ...by.map((f) => (f === "model" ? MODEL_ASKED : `coalesce(${f}, '')`)),
      ...(hourly ? ["epoch_ms(ts_start) // 3600000"] : []),
    ];
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT ${[...keys, "sum(cost_nanousd)::HUGEINT"].join(", ")} FROM events WHERE ${where}
         ${keys.length ? `GROUP BY ${keys.map((_, i) => i + 1).join(", ")}` : ""}`,
        params,
      ),
    );
    return res.getRowsJS().map((r) => ({
      values: r.slice(0, by.length) as string[],
      hour: hourly ? Number(r[by.length]) : null,
      cost_nanousd: BigInt((r[keys.length] as bigint | null) ?? 0n),
    }));
  }

  async runUsage(workspaceId: string, since: number, runId?: string): Promise<RunUsageRow[]> {
    const res = await this.reader.run((conn) =>
      conn.runAndReadAll(
        `SELECT agent_run_id, sum(cost_nanousd)::HUGEINT, sum(${INPUT_TOKENS} + output_tokens)::HUGEINT,
                count(*) FILTER (WHERE ${RUN_LLM_CALL}),
                count(*) FILTER (WHERE kind = 'tool'),
                greatest(0, count(*) FILTER (WHERE attempt > 1 AND parent_event_id IS NULL)
                  - count(*) FILTER (WHERE error_type = '${STREAM_OPTIONS_REFUSED}' AND parent_event_id IS NULL)),
                epoch_ms(min(ts_start))
         FROM events WHERE workspace_id = $1 AND agent_run_id IS NOT NULL
           AND ts_start >= make_timestamp($2::BIGINT * 1000) ${runId === undefined ? "" : "AND agent_run_id = $3"}
         GROUP BY agent_run_id`,
        runId === undefined ? [workspaceId, since] : [workspaceId, since, runId],
      ),
    );
    return res.getRowsJS().map((r) => ({
      agent_run_id: r[0] as string,
      cost_nanousd: BigInt(r[1] as bigint),
      total_tokens: Number(r[2]),
      llm_calls: Number(r[3]),
      tool_calls: Number(r[4]),
      retries: Number(r[5]),
      started_at: Number(r[6]),
    }));
  }

  /** The checkpoint pacer, for tests. */
  get checkpoints(): CheckpointPacer | null {
    return this.#pacer;
  }

  async close(): Promise<void> {
    if (this.#closer) clearInterval(this.#closer);
    await this.#pacer?.close();
    await this.#checkpointer?.run(async (c) => c.closeSync());
    await Promise.all(this.writers.map((w) => w.run(async (c) => c.closeSync())));
    await this.reader.run(async (c) => {
      await c.run("CHECKPOINT").catch(() => {});
      c.closeSync();
    });
    this.instance.closeSync();
  }
}

function policyFromRow(r: unknown[]): PolicyRow {
  return {
    workspace_id: r[0] as string,
    kind: r[1] as PolicyKind,
    id: r[2] as string,
    spec: JSON.parse(r[3] as string),
    updated_at: Number(r[4]),
    updated_by: r[5] as string,
  };
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

/** Runs `fn` in a transaction: committed when it returns anything but false, rolled back otherwise. */
async function inTransaction<T>(c: DuckDBConnection, fn: () => Promise<T>): Promise<T> {
  await c.run("BEGIN TRANSACTION");
  try {
    const out = await fn();
    await c.run(out === false ? "ROLLBACK" : "COMMIT");
    return out;
  } catch (e) {
    await c.run("ROLLBACK").catch(() => {});
    throw e;
  }
}

/** Inserts the batch's ids not stored yet into event_ids (in the caller's transaction); their recordKeys. */
async function newIds(c: DuckDBConnection, cols: RecordColumns): Promise<Set<string>> {
  try {
    await appendWith(c, "staging_ids", (a) => appendIds(a, cols), { schema: "main", catalog: "temp" });
    const res = await c.runAndReadAll(
      "INSERT INTO event_ids SELECT workspace_id, event_id::UUID FROM staging_ids ON CONFLICT DO NOTHING RETURNING workspace_id, event_id::VARCHAR",
    );
    return new Set(res.getRowsJS().map(([ws, id]) => recordKey(ws as string, id as string)));
  } finally {
    await c.run("DELETE FROM staging_ids").catch(() => {});
  }
}

/** Appends the rows at `only` (all when undefined) to events, and the late ones (summedInDays) to segment_days. */
async function appendFresh(
  c: DuckDBConnection,
  cols: RecordColumns,
  only: readonly number[] | undefined,
  late: CallRecord[],
  rowsPerAppender: number,
): Promise<void> {
  await appendInSlices(c, "events", { total: cols.rows, only }, rowsPerAppender, (a, pick) =>
    appendColumns(a, cols, pick),
  );
  if (late.length) await addLateCalls(c, late);
}
