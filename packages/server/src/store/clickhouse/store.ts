import type { Worker } from "node:worker_threads";
import {
  type CallRecord,
  PRICE_REF_NO_USAGE,
  STREAM_OPTIONS_REFUSED,
  uuidv7Time,
} from "@tollgate/core/fields";
import { DAY_MS, utcMidnight, utcMonthStart } from "../../time.js";
import { recordsJson } from "../json-rows.js";
import { mergeSpend, orderSpend, workspaceRows } from "../rows.js";
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
import { reviveError, WorkerCalls } from "../worker-calls.js";
import { agentRuns, firstSeen, segmentSets, userDays } from "./analytics.js";
import type { IdClaims } from "./claims.js";
import { recordToRow, rowToRecord, SELECT_RECORD } from "./columns.js";
import { answeredByServer, type ChExec } from "./exec.js";
import type { ClickHouseOptions } from "./open.js";
import { purgePartitions } from "./partitions.js";
import { type Layout, qualified } from "./schema.js";
import {
  COST_UNKNOWN,
  COUNT_RUN_LLM_CALLS,
  dayBound,
  INPUT_TOKENS,
  int,
  lit,
  moneyOf,
  moneySum,
  whereSql,
} from "./sql.js";

type Row = Record<string, unknown>;
const orNull = (v: unknown): string | null => (v === "" || v == null ? null : (v as string));
/** Text columns that are never none in events (provider/model are '' for non-model records). */
const NEVER_NONE: ReadonlySet<string> = new Set(["provider", "model", "data_mode", "kind", "day"]);
/**
 * Grouped by the stored text and turned into NULL in JS: 18.16 drops every row of a group keyed by
 * `nullIf(col, '')` when the WHERE clause also tests that column.
 */
const groupKey = (by: SpendDimension) => `toString(${by})`;
const MODEL_ASKED = "if(model_requested != '', model_requested, model)";

/** Ids per query (existence checks, trace reads): 2,000 quoted ids stay far below ClickHouse's 256 KiB max_query_size. */
const ID_CHECK_CHUNK = 2_000;
/** How long one replica trusts the retention horizons it read (another replica may purge). */
const RETENTION_TTL_MS = 10_000;
/** How long an append waits for ids another writer is inserting before it gives up (retryable). */
const CLAIM_WAIT_MS = 5_000;

/**
 * The append thread's young generation: batches pass through it briefly, and V8's default (16 MB
 * semi-spaces) only adds resident memory to a replica: with 3 MB its peak RSS was ~20 MB lower.
 */
const APPEND_THREAD_LIMITS = { maxYoungGenerationSizeMb: 3 };

export class IdsInFlightError extends Error {
  override name = "IdsInFlightError";
}

/**
 * The scale-out event store: ClickHouse over HTTP, shared by many stateless replicas. Appends are
 * idempotent by (workspace, event_id): the batch's ids are claimed (across replicas when the claims
 * live in Redis), checked against `event_ids`, and only new records are inserted, in one INSERT that
 * also feeds the id index and the daily summary (materialized views).
 */
export class ClickHouseStore implements Store {
  readonly writeConcurrency = 2;
  readonly shared = true;
  readonly #retention = new Map<string, { at: number; value: Promise<Retention> }>();
  #version = 0;
  /** The thread appends run on, when they have one (appendOnThread). */
  #appends: WorkerCalls | null = null;

  constructor(
    private readonly ch: ChExec,
    private readonly layout: Layout,
    private readonly claims: IdClaims,
    /** Each node's connection, for what acts on shard-local tables (partitions) without ON CLUSTER. */
    private readonly nodes: readonly ChExec[] = [ch],
  ) {}

  #t(table: string): string {
    return qualified(this.layout, table);
  }

  /** Increasing row versions for the ReplacingMergeTree tables (latest wins), in microseconds. */
  #nextVersion(): number {
    this.#version = Math.max(this.#version + 1, Date.now() * 1000);
    return this.#version;
  }

  /**
   * Runs appends on a thread of their own, with its own connection and claims (`script`: the compiled
   * append-entry.js). A gateway replica's main thread then only copies each batch across (~3 µs a record)
   * instead of claiming, checking and encoding it (~13 µs a record, with its garbage): that work, every
   * recorder batch, was what set the replica's p99. Should the thread die, appends come back here.
   */
  async appendOnThread(script: URL, opts: ClickHouseOptions): Promise<void> {
    const thread = { ...opts, createSchema: false }; // this connection made them already
    const started = await WorkerCalls.start(script, thread, reviveError, {
      resourceLimits: APPEND_THREAD_LIMITS,
      opening: "the ClickHouse append connection",
    });
    this.#appends = started.calls;
  }

  /** The calls into the append thread while it runs, else null. */
  get #liveAppends(): WorkerCalls | null {
    return this.#appends?.dead === null ? this.#appends : null;
  }

  /** The append thread while it runs (appendOnThread), else null. */
  get appendThread(): Worker | null {
    return this.#liveAppends?.worker ?? null;
  }

  async append(records: readonly CallRecord[]): Promise<AppendResult> {
    const thread = this.#liveAppends;
    if (thread) return thread.call("append", [records]);
    const batch = new Map<string, CallRecord>();
    for (const r of records) {
      const k = recordKey(r.workspace_id, r.event_id);
      if (!batch.has(k)) batch.set(k, r);
    }
    if (!batch.size) return { inserted: new Set() };
    const keys = [...batch.keys()];
    await this.#claim(keys);
    let outcomeKnown = true;
    try {
      const stored = await this.#storedIds([...batch.values()]);
      const fresh = [...batch].filter(([k]) => !stored.has(k));
      await this.ch
        .insert(
          this.#t("events"),
          fresh.map(([, r]) => recordToRow(r)),
        )
        .catch((e) => {
          outcomeKnown = answeredByServer(e);
          throw e;
        });
      return { inserted: new Set(fresh.map(([k]) => k)) };
    } finally {
      // An insert whose answer was lost may still land: a retry must find its ids claimed, not free.
      if (outcomeKnown) await this.claims.release(keys);
      else await this.claims.abandon(keys);
    }
  }

  async #claim(keys: string[]): Promise<void> {
    const deadline = Date.now() + CLAIM_WAIT_MS;
    for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
      const busy = await this.claims.claim(keys);
      if (!busy.length) return;
      if (Date.now() > deadline)
        throw new IdsInFlightError(
          `${busy.length} event ids of this batch are being stored by another writer; retry the batch`,
        );
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Which of the records' (workspace, id) are stored already. */
  async #storedIds(records: Pick<CallRecord, "workspace_id" | "event_id">[]): Promise<Set<string>> {
    const byWs = new Map<string, string[]>();
    for (const r of records) {
      const ids = byWs.get(r.workspace_id) ?? [];
      ids.push(r.event_id);
      byWs.set(r.workspace_id, ids);
    }
    const out = new Set<string>();
    for (const [ws, ids] of byWs)
      for (let off = 0; off < ids.length; off += ID_CHECK_CHUNK) {
        const chunk = ids.slice(off, off + ID_CHECK_CHUNK);
        const rows = await this.ch.rows<{ event_id: string }>(
          `SELECT DISTINCT event_id FROM ${this.#t("event_ids")} WHERE workspace_id = ${lit(ws)} AND event_id IN (${chunk.map(lit).join(", ")})`,
        );
        for (const r of rows) out.add(recordKey(ws, r.event_id));
      }
    return out;
  }

  /**
   * The events table is ordered by time, not id: a lookup by id alone reads the whole workspace. The id
   * table answers "not stored (yet)" from its primary key, which is what a client polling for its call
   * mostly hears; a v7 id then bounds the time range (a call starts within a week before its id was made,
   * and at most a day after, for a client's clock), and only an id outside it falls back to a full read.
   */
  async storedIds(workspaceId: string, eventIds: readonly string[]): Promise<Set<string>> {
    const held = await this.#storedIds(eventIds.map((event_id) => ({ workspace_id: workspaceId, event_id })));
    return new Set(eventIds.filter((id) => held.has(recordKey(workspaceId, id))));
  }

  async findEvent(workspaceId: string, eventId: string): Promise<CallRecord | null> {
    const known = await this.#storedIds([{ workspace_id: workspaceId, event_id: eventId }]);
    if (!known.size) return null;
    const where = { event_id: eventId };
    const at = uuidv7Time(eventId);
    if (at !== null) {
      const [rec] = await this.query({
        workspaceId,
        from: at - 7 * DAY_MS,
        to: at + DAY_MS,
        where,
        limit: 1,
      });
      if (rec) return rec;
    }
    const [rec] = await this.query({ workspaceId, where, limit: 1 });
    return rec ?? null;
  }

  async traceSpans(
    workspaceId: string,
    traceIds: readonly string[],
    from: number,
    to: number,
  ): Promise<TraceSpan[]> {
    const out: TraceSpan[] = [];
    const where = whereSql({ workspaceId, from, to });
    for (let at = 0; at < traceIds.length; at += ID_CHECK_CHUNK) {
      const ids = traceIds.slice(at, at + ID_CHECK_CHUNK).map(lit);
      const rows = await this.ch.rows<Record<keyof TraceSpan, string>>(
        `SELECT event_id, trace_id, span_id, parent_span_id, kind, usage_raw, priced FROM ${this.#t("events")}
         WHERE ${where} AND trace_id IN (${ids.join(", ")})`,
      );
      for (const r of rows)
        out.push({
          ...r,
          span_id: orNull(r.span_id),
          parent_span_id: orNull(r.parent_span_id),
          usage_raw: r.usage_raw === "" ? null : JSON.parse(r.usage_raw),
          priced: Number(r.priced) === 1,
        } as TraceSpan);
    }
    return out;
  }

  async query(filter: EventFilter & { limit?: number; after?: QueryCursor }): Promise<CallRecord[]> {
    let where = whereSql(filter);
    if (filter.after) {
      const t = int(filter.after.ts);
      where += ` AND (ts_start > ${t} OR (ts_start = ${t} AND event_id > ${lit(filter.after.id)}))`;
    }
    const limit = Math.min(Math.max(filter.limit ?? 1000, 1), 100_000);
    const rows = await this.ch.rows<Row>(
      `SELECT ${SELECT_RECORD} FROM ${this.#t("events")} WHERE ${where} ORDER BY ts_start, event_id LIMIT ${limit}`,
    );
    return rows.map(rowToRecord);
  }

  async queryJson(
    filter: EventFilter & { limit?: number; after?: QueryCursor },
    fields: readonly (keyof CallRecord)[],
  ): Promise<JsonRows> {
    return recordsJson(await this.query(filter), fields);
  }

  /**
   * Spend by one dimension. Past the raw horizon (dropped partitions) the days come from the daily
   * summary, which holds every call (it is fed on insert), so the raw part starts at the horizon.
   */
  async spend(filter: EventFilter, by: SpendDimension): Promise<SpendRow[]> {
    const horizon = (await this.retention(filter.workspaceId)).raw_available_from;
    if (
      horizon === null ||
      (filter.from !== undefined && filter.from >= horizon) ||
      !summaryCanAnswer(filter)
    )
      return this.#rawSpend(filter, by);
    const raw =
      filter.to !== undefined && filter.to <= horizon
        ? []
        : await this.#rawSpend({ ...filter, from: horizon }, by);
    const fromDay = utcMidnight(filter.from ?? 0);
    const toDay = Math.min(horizon, Math.ceil((filter.to ?? horizon) / DAY_MS) * DAY_MS);
    const old = await this.#summarySpend(filter, by, fromDay, toDay);
    return mergeSpend(old, raw, by);
  }

  async #rawSpend(filter: EventFilter, by: SpendDimension): Promise<SpendRow[]> {
    const rows = await this.ch.rows<Row>(
      `SELECT ${groupKey(by)} AS group_key, count() AS calls, ${moneySum("cost_nanousd", "cost")}, sum(${INPUT_TOKENS}) AS input_sum,
              sum(output_tokens) AS output_sum, countIf(${COST_UNKNOWN}) AS unpriced
       FROM ${this.#t("events")} WHERE ${whereSql(filter)} GROUP BY group_key`,
    );
    return spendRows(rows, by);
  }

  async #summarySpend(filter: EventFilter, by: SpendDimension, fromDay: number, toDay: number) {
    const parts = [
      `workspace_id = ${lit(filter.workspaceId)}`,
      dayBound(">=", fromDay),
      dayBound("<", toDay),
    ];
    if (filter.deploymentOrUnset !== undefined)
      parts.push(`deployment IN (${lit(filter.deploymentOrUnset)}, '')`);
    for (const [k, v] of Object.entries(filter.where ?? {}))
      if (v !== undefined) parts.push(`${k} = ${lit(v)}`);
    const rows = await this.ch.rows<Row>(
      `SELECT ${groupKey(by)} AS group_key, sum(calls) AS calls_sum, ${moneySum("cost_sum", "cost_total")}, sum(input_sum) AS input_total,
              sum(output_sum) AS output_total, sum(unpriced_calls) AS unpriced_sum
       FROM ${this.#t("daily_summary")} WHERE ${parts.join(" AND ")} GROUP BY group_key`,
    );
    return spendRows(
      rows.map((r) => ({
        group_key: r.group_key,
        calls: r.calls_sum,
        cost_usd: r.cost_total_usd,
        cost_nano: r.cost_total_nano,
        input_sum: r.input_total,
        output_sum: r.output_total,
        unpriced: r.unpriced_sum,
      })),
      by,
    );
  }

  /** Horizons, re-read every few seconds: another replica's worker may have purged. */
  retention(workspaceId: string): Promise<Retention> {
    const hit = this.#retention.get(workspaceId);
    if (hit && Date.now() - hit.at < RETENTION_TTL_MS) return hit.value;
    const value = this.ch
      .rows<Row>(
        `SELECT argMax(raw_available_from, version) AS raw, argMax(summary_available_from, version) AS summary
         FROM ${this.#t("retention")} WHERE workspace_id = ${lit(workspaceId)} GROUP BY workspace_id`,
      )
      .then((rows) => ({
        raw_available_from: rows[0]?.raw == null ? null : Number(rows[0].raw),
        summary_available_from: rows[0]?.summary == null ? null : Number(rows[0].summary),
      }));
    value.catch(() => this.#retention.delete(workspaceId));
    this.#retention.set(workspaceId, { at: Date.now(), value });
    return value;
  }

  /**
   * Retention by dropping whole monthly partitions: raw events of every month that ends by `rawBefore`,
   * summary rows of every month that ends by `summaryBefore`. The horizons become those month starts
   * (a raw retention of N days keeps at least N days). Event ids stay, so late retries stay duplicates.
   */
  async purge(rawBefore: number | null, summaryBefore: number | null) {
    const rawFrom = rawBefore === null ? null : utcMonthStart(rawBefore);
    const summaryFrom = summaryBefore === null ? null : utcMonthStart(summaryBefore);
    try {
      // Horizons first: spend reads the summary (every call) before the raw horizon whether or not those
      // partitions are gone yet, so a purge cut short between drops (one failing, a lost connection)
      // leaves no dropped month that answers still read from raw events.
      // Every workspace made or holding calls (a root import's too), those whose calls are only raw ones of
      // months a purge dropped from the summary included: else theirs would go with no horizon recorded.
      const rows = [];
      let moved = false;
      for (const { id } of await this.workspaces()) {
        this.#retention.delete(id);
        const now = await this.retention(id);
        const later = (a: number | null, b: number | null) =>
          a === null ? b : b === null ? a : Math.max(a, b);
        const row = {
          workspace_id: id,
          raw_available_from: later(now.raw_available_from, rawFrom),
          summary_available_from: later(now.summary_available_from, summaryFrom),
          version: this.#nextVersion(),
        };
        moved ||=
          row.raw_available_from !== now.raw_available_from ||
          row.summary_available_from !== now.summary_available_from;
        rows.push(row);
      }
      await this.ch.insert(this.#t("retention"), rows);
      // Other replicas trust the horizons they read for RETENTION_TTL_MS: dropped sooner, a month would
      // still be read from raw events by one that read them just before.
      if (moved) await new Promise((r) => setTimeout(r, RETENTION_TTL_MS));
      const raw = rawFrom === null ? 0 : await purgePartitions(this.nodes, this.layout, "events", rawFrom);
      const summary =
        summaryFrom === null
          ? 0
          : await purgePartitions(this.nodes, this.layout, "daily_summary", summaryFrom);
      return { raw_deleted: raw, summary_deleted: summary };
    } finally {
      this.#retention.clear();
    }
  }

  segments(
    filter: EventFilter,
    dims: readonly SegmentDimension[],
    users: boolean,
  ): Promise<Record<SegmentDimension, SegmentRow[]>> {
    return segmentSets(this.ch, this.#t("events"), filter, dims, users);
  }

  firstSeen(filter: EventFilter, by: SegmentDimension, since: number) {
    return firstSeen(this.ch, this.#t("events"), filter, by, since);
  }

  userDays(filter: EventFilter, top: number): Promise<UserDayRow[]> {
    return userDays(this.ch, this.#t("events"), filter, top);
  }

  agentRuns(filter: EventFilter): Promise<AgentRunRollupRow[]> {
    return agentRuns(this.ch, this.#t("events"), filter);
  }

  async unpriced(filter: EventFilter): Promise<UnpricedRow[]> {
    const rows = await this.ch.rows<Row>(
      `SELECT provider, model, count() AS calls, min(ts_start) AS first_ms, max(ts_start) AS last_ms
       FROM ${this.#t("events")} WHERE ${whereSql(filter)} AND ${COST_UNKNOWN} AND price_ref != ${lit(PRICE_REF_NO_USAGE)}
       GROUP BY provider, model ORDER BY calls DESC, provider, model`,
    );
    return rows.map((r) => ({
      provider: r.provider as string,
      model: r.model as string,
      calls: Number(r.calls),
      first_seen: Number(r.first_ms),
      last_seen: Number(r.last_ms),
    }));
  }

  async count(filter: EventFilter): Promise<number> {
    const rows = await this.ch.rows<Row>(
      `SELECT count() AS n FROM ${this.#t("events")} WHERE ${whereSql(filter)}`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * The summary holds every call (its view sums each insert) but those of the months a purge dropped from
   * it (summary_months) while their raw calls are kept longer: those are read from the events of those
   * months only (their partitions), so that a list costs no scan of every call.
   */
  workspaces(): Promise<WorkspaceRow[]> {
    return this.#workspaceRows(null);
  }

  async workspace(id: string): Promise<WorkspaceRow | null> {
    return (await this.#workspaceRows(id))[0] ?? null;
  }

  /** Every workspace, or only the one `only` names: each table's key starts with the workspace id. */
  async #workspaceRows(only: string | null): Promise<WorkspaceRow[]> {
    /** `column`'s distinct ids where `conditions` hold (and the id is `only`'s: one row then says enough). */
    const distinct = async (column: string, table: string, conditions: string[] = []) => {
      const where = only === null ? conditions : [`${column} = ${lit(only)}`, ...conditions];
      const rows = await this.ch.rows<Record<string, string>>(
        `SELECT DISTINCT ${column} FROM ${this.#t(table)}${where.length ? ` WHERE ${where.join(" AND ")}` : ""}${only === null ? "" : " LIMIT 1"}`,
      );
      return rows.map((r) => r[column]!);
    };
    const [horizons] = await this.ch.rows<Row>(
      `SELECT max(summary_available_from) AS summary_from_max FROM ${this.#t("retention")}`,
    );
    const summaryFrom = horizons?.summary_from_max == null ? null : Number(horizons.summary_from_max);
    return workspaceRows(await distinct("id", "workspaces"), [
      ...(await distinct("workspace_id", "daily_summary")),
      ...(summaryFrom === null ? [] : await distinct("workspace_id", "events", [dayBound("<", summaryFrom)])),
    ]);
  }

  async ensureWorkspace(id: string): Promise<void> {
    const rows = await this.ch.rows(`SELECT id FROM ${this.#t("workspaces")} WHERE id = ${lit(id)} LIMIT 1`);
    if (!rows.length) await this.ch.insert(this.#t("workspaces"), [{ id, created_at: Date.now() }]);
  }

  async insertKey(key: ApiKeyRecord & { hash: string }): Promise<void> {
    await this.ch.insert(this.#t("api_keys"), [keyRow(key, this.#nextVersion())]);
  }

  async findKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    const rows = await this.#keys(`hash = ${lit(hash)}`);
    const k = rows.find((r) => r.revoked_at === null);
    if (!k) return null;
    const { revoked_at: _, ...key } = k;
    return key;
  }

  listKeys(workspaceId?: string): Promise<(ApiKeyRecord & { revoked_at: number | null })[]> {
    return this.#keys(workspaceId === undefined ? "1" : `workspace_id = ${lit(workspaceId)}`);
  }

  /** The latest version of each key matching `where`. */
  async #keys(where: string): Promise<(ApiKeyRecord & { revoked_at: number | null; hash?: string })[]> {
    const rows = await this.ch.rows<Row>(
      `SELECT id, workspace_id, role, label, created_at, defaults, revoked_at FROM ${this.#t("api_keys")} FINAL
       WHERE ${where} ORDER BY workspace_id, created_at, id`,
    );
    return rows.map((r) => ({
      id: r.id as string,
      workspace_id: r.workspace_id as string,
      role: r.role as Role,
      label: orNull(r.label),
      created_at: Number(r.created_at),
      defaults: r.defaults ? (JSON.parse(r.defaults as string) as KeyDefaults) : {},
      revoked_at: r.revoked_at == null ? null : Number(r.revoked_at),
    }));
  }

  async revokeKey(workspaceId: string, id: string): Promise<boolean> {
    const rows = await this.ch.rows<Row>(
      `SELECT id, workspace_id, role, hash, label, created_at, defaults FROM ${this.#t("api_keys")} FINAL
       WHERE workspace_id = ${lit(workspaceId)} AND id = ${lit(id)} AND revoked_at IS NULL`,
    );
    const r = rows[0];
    if (!r) return false;
    await this.ch.insert(this.#t("api_keys"), [
      { ...r, revoked_at: Date.now(), version: this.#nextVersion() },
    ]);
    return true;
  }

  async listPolicies(workspaceId?: string): Promise<PolicyRow[]> {
    const rows = await this.ch.rows<Row>(
      `SELECT workspace_id, kind, id, spec, updated_at, updated_by FROM ${this.#t("policies")} FINAL
       WHERE deleted = 0 ${workspaceId === undefined ? "" : `AND workspace_id = ${lit(workspaceId)}`}
       ORDER BY workspace_id, kind, id`,
    );
    return rows.map(policyFromRow);
  }

  putPolicy(row: PolicyRow): Promise<PolicyRow | null> {
    return this.#changePolicy(row.workspace_id, row.kind, row.id, row.updated_by, row);
  }

  deletePolicy(workspaceId: string, kind: PolicyKind, id: string, actor: string): Promise<PolicyRow | null> {
    return this.#changePolicy(workspaceId, kind, id, actor, null);
  }

  /**
   * A new version of the policy (or a deletion marker), then its audit row. ClickHouse has no
   * transactions: the audit row is written right after, and a failure between is reported to the caller.
   */
  async #changePolicy(
    ws: string,
    kind: PolicyKind,
    id: string,
    actor: string,
    next: PolicyRow | null,
  ): Promise<PolicyRow | null> {
    const rows = await this.ch.rows<Row>(
      `SELECT workspace_id, kind, id, spec, updated_at, updated_by FROM ${this.#t("policies")} FINAL
       WHERE workspace_id = ${lit(ws)} AND kind = ${lit(kind)} AND id = ${lit(id)} AND deleted = 0`,
    );
    const before = rows.map(policyFromRow)[0] ?? null;
    if (!next && !before) return null;
    const ts = next?.updated_at ?? Date.now();
    await this.ch.insert(this.#t("policies"), [
      {
        workspace_id: ws,
        kind,
        id,
        spec: JSON.stringify(next ? next.spec : before!.spec),
        updated_at: ts,
        updated_by: actor,
        deleted: next ? 0 : 1,
        version: this.#nextVersion(),
      },
    ]);
    await this.ch.insert(this.#t("policy_audit"), [
      {
        ts,
        workspace_id: ws,
        kind,
        id,
        action: next ? (before ? "update" : "create") : "delete",
        actor,
        before: before ? JSON.stringify(before.spec) : "",
        after: next ? JSON.stringify(next.spec) : "",
      },
    ]);
    return before;
  }

  async policyAudit(workspaceId: string, kind?: PolicyKind, id?: string): Promise<PolicyAuditRow[]> {
    let where = `workspace_id = ${lit(workspaceId)}`;
    if (kind) where += ` AND kind = ${lit(kind)}`;
    if (id) where += ` AND id = ${lit(id)}`;
    const rows = await this.ch.rows<Row>(
      `SELECT ts, workspace_id, kind, id, action, actor, before, after FROM ${this.#t("policy_audit")}
       WHERE ${where} ORDER BY ts, id`,
    );
    return rows.map((r) => ({
      ts: Number(r.ts),
      workspace_id: r.workspace_id as string,
      kind: r.kind as PolicyKind,
      id: r.id as string,
      action: r.action as PolicyAuditRow["action"],
      actor: r.actor as string,
      before: r.before === "" ? null : JSON.parse(r.before as string),
      after: r.after === "" ? null : JSON.parse(r.after as string),
    }));
  }

  async appendLimitEvents(rows: LimitEventRow[]): Promise<void> {
    await this.ch.insert(
      this.#t("limit_events"),
      rows.map((r) => ({
        ...r,
        spend_nanousd: r.spend_nanousd === null ? null : String(r.spend_nanousd),
        limit_nanousd: r.limit_nanousd === null ? null : String(r.limit_nanousd),
        detail: r.detail === null ? null : JSON.stringify(r.detail),
      })),
    );
  }

  async limitEvents(
    workspaceId: string,
    opts: { from?: number; type?: string; subject?: string; limit?: number },
  ): Promise<LimitEventRow[]> {
    let where = `workspace_id = ${lit(workspaceId)}`;
    if (opts.from !== undefined) where += ` AND ts >= ${int(opts.from)}`;
    if (opts.type) where += ` AND type = ${lit(opts.type)}`;
    if (opts.subject) where += ` AND subject = ${lit(opts.subject)}`;
    const limit = Math.min(Math.max(opts.limit ?? 1000, 1), 100_000);
    const rows = await this.ch.rows<Row>(
      `SELECT ts, workspace_id, type, subject, bucket, from_state, to_state, spend_nanousd, limit_nanousd,
              event_id, request_id, detail FROM ${this.#t("limit_events")} WHERE ${where} ORDER BY ts, subject LIMIT ${limit}`,
    );
    return rows.map((r) => ({
      ts: Number(r.ts),
      workspace_id: r.workspace_id as string,
      type: r.type as LimitEventRow["type"],
      subject: r.subject as string,
      bucket: (r.bucket as string | null) ?? null,
      from_state: (r.from_state as string | null) ?? null,
      to_state: (r.to_state as string | null) ?? null,
      spend_nanousd: r.spend_nanousd == null ? null : BigInt(r.spend_nanousd as string),
      limit_nanousd: r.limit_nanousd == null ? null : BigInt(r.limit_nanousd as string),
      event_id: (r.event_id as string | null) ?? null,
      request_id: (r.request_id as string | null) ?? null,
      detail: r.detail == null ? null : JSON.parse(r.detail as string),
    }));
  }

  async sumCost(
    filter: EventFilter & { tag?: string },
    by: readonly SumField[],
    hourly: boolean,
  ): Promise<CostSumRow[]> {
    // "model" in a limit's scope is the model a call asked for (the gateway checks before the reply).
    const { model, ...fixed } = filter.where ?? {};
    let where = whereSql({ ...filter, where: fixed });
    if (model !== undefined) where += ` AND ${MODEL_ASKED} = ${lit(model)}`;
    if (filter.tag !== undefined) where += ` AND has(tags, ${lit(filter.tag)})`;
    for (const f of by)
      if (!(SUM_FIELDS as readonly string[]).includes(f)) throw new Error(`not a sum field: ${f}`);
    const keys = [
      ...by.map((f, i) => `${f === "model" ? MODEL_ASKED : `toString(${f})`} AS k${i}`),
      ...(hourly ? ["intDiv(ts_start, 3600000) AS hour_slot"] : []),
    ];
    const names = [...by.map((_, i) => `k${i}`), ...(hourly ? ["hour_slot"] : [])];
    const rows = await this.ch.rows<Row>(
      `SELECT ${[...keys, moneySum("cost_nanousd", "cost")].join(", ")} FROM ${this.#t("events")} WHERE ${where}
       ${names.length ? `GROUP BY ${names.join(", ")}` : ""}`,
    );
    return rows.map((r) => ({
      values: by.map((_, i) => r[`k${i}`] as string),
      hour: hourly ? Number(r.hour_slot) : null,
      cost_nanousd: moneyOf(r, "cost"),
    }));
  }

  async runUsage(workspaceId: string, since: number, runId?: string): Promise<RunUsageRow[]> {
    const rows = await this.ch.rows<Row>(
      `SELECT agent_run_id, ${moneySum("cost_nanousd", "cost")}, sum(${INPUT_TOKENS} + output_tokens) AS tokens,
              ${COUNT_RUN_LLM_CALLS} AS llm, countIf(kind = 'tool') AS tools,
              greatest(0, toInt64(countIf(attempt > 1 AND parent_event_id = ''))
                - toInt64(countIf(error_type = '${STREAM_OPTIONS_REFUSED}' AND parent_event_id = ''))) AS retries,
              min(ts_start) AS started
       FROM ${this.#t("events")} WHERE workspace_id = ${lit(workspaceId)} AND agent_run_id != ''
         AND ts_start >= ${int(since)} AND ${dayBound(">=", since)}
         ${runId === undefined ? "" : `AND agent_run_id = ${lit(runId)}`}
       GROUP BY agent_run_id`,
    );
    return rows.map((r) => ({
      agent_run_id: r.agent_run_id as string,
      cost_nanousd: moneyOf(r, "cost"),
      total_tokens: Number(r.tokens),
      llm_calls: Number(r.llm),
      tool_calls: Number(r.tools),
      retries: Number(r.retries),
      started_at: Number(r.started),
    }));
  }

  async close(): Promise<void> {
    await this.#liveAppends?.close();
    await this.claims.close();
    await Promise.all([...new Set([this.ch, ...this.nodes])].map((n) => n.close()));
  }
}

/** Spend rows in the embedded store's order: days ascending, else most spend first, NULL keys last. */
function spendRows(rows: Row[], by: SpendDimension): SpendRow[] {
  const out = rows.map((r) => ({
    key: r.group_key === "" && !NEVER_NONE.has(by) ? null : (r.group_key as string),
    calls: Number(r.calls),
    cost_nanousd: moneyOf(r, "cost"),
    input_tokens: Number(r.input_sum),
    output_tokens: Number(r.output_sum),
    unpriced_calls: Number(r.unpriced),
  }));
  return orderSpend(out, by);
}

function policyFromRow(r: Row): PolicyRow {
  return {
    workspace_id: r.workspace_id as string,
    kind: r.kind as PolicyKind,
    id: r.id as string,
    spec: JSON.parse(r.spec as string),
    updated_at: Number(r.updated_at),
    updated_by: r.updated_by as string,
  };
}

function keyRow(key: ApiKeyRecord & { hash: string }, version: number) {
  return {
    id: key.id,
    workspace_id: key.workspace_id,
    role: key.role,
    hash: key.hash,
    label: key.label ?? "",
    created_at: key.created_at,
    defaults: JSON.stringify(key.defaults),
    revoked_at: null,
    version,
  };
}
