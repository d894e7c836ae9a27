import { resolve as resolvePath } from "node:path";
import type { CallRecord } from "@tollgate/core";
import { DataDirLockedError } from "../../data-dir-lock.js";
import type {
  AgentRunRollupRow,
  ApiKeyRecord,
  AppendResult,
  CostSumRow,
  EventFilter,
  JsonRows,
  LimitEventRow,
  PolicyAuditRow,
  PolicyKind,
  PolicyRow,
  QueryCursor,
  Retention,
  RunUsageRow,
  SegmentDimension,
  SegmentRow,
  SpendDimension,
  SpendRow,
  Store,
  SumField,
  TraceSpan,
  UnpricedRow,
  UserDayRow,
  WorkspaceRow,
} from "../types.js";
import { reviveError, type WireError, WorkerCalls } from "../worker-calls.js";
import { toColumns, transferList } from "./columns.js";

/**
 * The store thread's young generation: 12 MB, so 4 MB semi-spaces (a worker's default is 48 MB, 16 MB
 * ones). Its garbage is short-lived batches; a saturated embedded gateway peaked ~25 MB lower, and bulk
 * ingest kept its pace within this box's noise.
 */
const STORE_THREAD_LIMITS = { maxYoungGenerationSizeMb: 12 };

function revive(error: WireError): Error {
  return error.name === "DataDirLockedError" ? new DataDirLockedError(error.message) : reviveError(error);
}

/**
 * The DuckDB store on a worker thread, behind the same Store interface. Calls are messages; appended
 * records cross as columns, everything else by structured clone (bigints included).
 */
export class ThreadStore implements Store {
  readonly shared = false;
  /** DuckDB's file lock is per process: two threads of one process must be kept apart here. */
  static readonly #open = new Set<string>();

  private constructor(
    private readonly calls: WorkerCalls,
    readonly writeConcurrency: number,
    dataDir: string,
  ) {
    // The thread released the file: the dir may be opened again.
    calls.worker.on("exit", () => ThreadStore.#open.delete(dataDir));
  }

  static open(dataDir: string, script: URL): Promise<ThreadStore> {
    const dir = resolvePath(dataDir);
    if (ThreadStore.#open.has(dir))
      return Promise.reject(
        new DataDirLockedError(`data dir ${dir} is in use by another Tollgate process (this one)`),
      );
    ThreadStore.#open.add(dir);
    return WorkerCalls.start(script, { dataDir }, revive, {
      opening: dir,
      resourceLimits: STORE_THREAD_LIMITS,
    }).then(
      ({ calls, info }) => new ThreadStore(calls, info.writeConcurrency as number, dir),
      (e) => {
        ThreadStore.#open.delete(dir);
        throw e;
      },
    );
  }

  #call<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.calls.call(method, args);
  }

  /** Records cross as columns (typed arrays moved, texts deduplicated): cloning the objects cost more. */
  append(records: readonly CallRecord[]): Promise<AppendResult> {
    const cols = toColumns(records);
    return this.calls.call("appendColumns", [cols], transferList(cols));
  }
  query(filter: EventFilter & { limit?: number; after?: QueryCursor }): Promise<CallRecord[]> {
    return this.#call("query", filter);
  }
  /** A page crosses as one string: cloning its records cost more than the query. */
  queryJson(
    filter: EventFilter & { limit?: number; after?: QueryCursor },
    fields: readonly (keyof CallRecord)[],
  ): Promise<JsonRows> {
    return this.#call("queryJson", filter, fields);
  }
  spend(filter: EventFilter, by: SpendDimension): Promise<SpendRow[]> {
    return this.#call("spend", filter, by);
  }
  retention(workspaceId: string): Promise<Retention> {
    return this.#call("retention", workspaceId);
  }
  purge(
    rawBefore: number | null,
    summaryBefore: number | null,
  ): Promise<{ raw_deleted: number; summary_deleted: number }> {
    return this.#call("purge", rawBefore, summaryBefore);
  }
  unpriced(filter: EventFilter): Promise<UnpricedRow[]> {
    return this.#call("unpriced", filter);
  }
  segments(
    filter: EventFilter,
    dims: readonly SegmentDimension[],
    users: boolean,
  ): Promise<Record<SegmentDimension, SegmentRow[]>> {
    return this.#call("segments", filter, dims, users);
  }
  firstSeen(
    filter: EventFilter,
    by: SegmentDimension,
    since: number,
  ): Promise<{ key: string; first_seen: number }[]> {
    return this.#call("firstSeen", filter, by, since);
  }
  userDays(filter: EventFilter, top: number): Promise<UserDayRow[]> {
    return this.#call("userDays", filter, top);
  }
  agentRuns(filter: EventFilter): Promise<AgentRunRollupRow[]> {
    return this.#call("agentRuns", filter);
  }
  findEvent(workspaceId: string, eventId: string): Promise<CallRecord | null> {
    return this.#call("findEvent", workspaceId, eventId);
  }

  storedIds(workspaceId: string, eventIds: readonly string[]): Promise<Set<string>> {
    return this.#call("storedIds", workspaceId, eventIds);
  }

  traceSpans(
    workspaceId: string,
    traceIds: readonly string[],
    from: number,
    to: number,
  ): Promise<TraceSpan[]> {
    return this.#call("traceSpans", workspaceId, traceIds, from, to);
  }

  count(filter: EventFilter): Promise<number> {
    return this.#call("count", filter);
  }
  workspaces(): Promise<WorkspaceRow[]> {
    return this.#call("workspaces");
  }
  workspace(id: string): Promise<WorkspaceRow | null> {
    return this.#call("workspace", id);
  }
  ensureWorkspace(id: string): Promise<void> {
    return this.#call("ensureWorkspace", id);
  }
  insertKey(key: ApiKeyRecord & { hash: string }): Promise<void> {
    return this.#call("insertKey", key);
  }
  findKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    return this.#call("findKeyByHash", hash);
  }
  listKeys(workspaceId?: string): Promise<(ApiKeyRecord & { revoked_at: number | null })[]> {
    return this.#call("listKeys", workspaceId);
  }
  revokeKey(workspaceId: string, id: string): Promise<boolean> {
    return this.#call("revokeKey", workspaceId, id);
  }
  listPolicies(workspaceId?: string): Promise<PolicyRow[]> {
    return this.#call("listPolicies", workspaceId);
  }
  putPolicy(row: PolicyRow): Promise<PolicyRow | null> {
    return this.#call("putPolicy", row);
  }
  deletePolicy(workspaceId: string, kind: PolicyKind, id: string, actor: string): Promise<PolicyRow | null> {
    return this.#call("deletePolicy", workspaceId, kind, id, actor);
  }
  policyAudit(workspaceId: string, kind?: PolicyKind, id?: string): Promise<PolicyAuditRow[]> {
    return this.#call("policyAudit", workspaceId, kind, id);
  }
  appendLimitEvents(rows: LimitEventRow[]): Promise<void> {
    return this.#call("appendLimitEvents", rows);
  }
  limitEvents(
    workspaceId: string,
    opts: { from?: number; type?: string; subject?: string; limit?: number },
  ): Promise<LimitEventRow[]> {
    return this.#call("limitEvents", workspaceId, opts);
  }
  sumCost(
    filter: EventFilter & { tag?: string },
    by: readonly SumField[],
    hourly: boolean,
  ): Promise<CostSumRow[]> {
    return this.#call("sumCost", filter, by, hourly);
  }
  runUsage(workspaceId: string, since: number, runId?: string): Promise<RunUsageRow[]> {
    return this.#call("runUsage", workspaceId, since, runId);
  }
  close(): Promise<void> {
    return this.calls.close();
  }
}
