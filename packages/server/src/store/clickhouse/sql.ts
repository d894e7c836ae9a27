import { STREAM_OPTIONS_REFUSED } from "@tollgate/core/fields";
import { type EventFilter, isFilterField } from "../types.js";

// ClickHouse SQL fragments every event query shares. They follow DESIGN.md's rules so they run on
// Debian's 18.16 and on modern servers: no query parameters (values are escaped here), no CTEs, no
// window functions, no GROUPING SETS.

/** A string literal: backslashes and quotes escaped, as ClickHouse reads them. */
export function lit(v: string): string {
  return `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** An integer literal from a number that must be a safe integer (epoch ms, counts). */
export function int(v: number): string {
  if (!Number.isSafeInteger(v)) throw new Error(`not a safe integer: ${v}`);
  return String(v);
}

/** A model call: analytics count these as calls and requests; tool, agent and other records are structure. */
export const MODEL_CALL = "kind IN ('llm', 'embedding')";
/**
 * A record analytics read: every model call, and any other record that carries a cost (a tool's reported
 * cost is spend, as `spend`, budgets and exports count it, so a window's money is one amount everywhere).
 * A traced tool or agent span at $0 adds nothing, not even an empty row.
 */
export const MODEL_CALL_OR_COSTED = `(${MODEL_CALL} OR cost_nanousd != 0)`;
/**
 * The model calls `cond` holds for, counted. Over Distributed tables 18.16 cannot merge
 * `countIf(kind IN (…))` (its argument is LowCardinality(UInt8)), while one countIf per kind compared by
 * equality merges fine.
 */
const countModelCalls = (cond: string) =>
  `countIf(kind = 'llm' AND ${cond}) + countIf(kind = 'embedding' AND ${cond})`;
/**
 * An agent run's LLM calls counted (a batch's results are none: past work read back; a hosted tool's model
 * call is its call's; an attempt refused for the stream_options the gateway added is its re-send's).
 */
export const COUNT_RUN_LLM_CALLS = countModelCalls(
  `batch = 0 AND parent_event_id = '' AND error_type != '${STREAM_OPTIONS_REFUSED}'`,
);
/** A call whose cost is not known: a model call without a price or without usage. */
export const COST_UNKNOWN = `priced = 0 AND ${MODEL_CALL}`;
/** All input tokens of a record (its input categories are disjoint). */
export const INPUT_TOKENS =
  "input_uncached_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens + input_audio_tokens + image_tokens + cache_audio_read_tokens + cache_image_read_tokens";
/**
 * Requests, counted by their first attempt (retries share its request_id); a hosted tool's model call
 * (parent_event_id set) is its response's, never a request or a success of its own.
 */
const FIRST_ATTEMPT = "attempt = 1 AND parent_event_id = ''";
const SUCCEEDED = "status = 'ok' AND parent_event_id = ''";
export const REQUESTS = `countIf(${FIRST_ATTEMPT})`;
export const OK_REQUESTS = `countIf(${SUCCEEDED})`;
/** REQUESTS and OK_REQUESTS among MODEL_CALL_OR_COSTED records: a costed tool record is no request. */
export const MODEL_REQUESTS = countModelCalls(FIRST_ATTEMPT);
export const MODEL_OK_REQUESTS = countModelCalls(SUCCEEDED);

const NANO_PER_USD = 1_000_000_000;

/**
 * A sum of nano-USD, exact past int64: `sum()` of an Int64 is an Int64 that wraps (ten calls at the largest
 * cost a record takes, 18 digits, read back negative), so the amounts are summed in two Int64 parts, whole
 * and fractional USD, put together by `moneyOf`. (Decimal128 would hold the sum, but 18.16 crashes on one
 * in a groupArray of tuples.) `cond`: only the rows it holds for (sumIf).
 */
export function moneySum(expr: string, name: string, cond?: string): string {
  const part = (x: string) => (cond === undefined ? `sum(${x})` : `sumIf(${x}, ${cond})`);
  return `${part(`intDiv(${expr}, ${NANO_PER_USD})`)} AS ${name}_usd, ${part(`${expr} % ${NANO_PER_USD}`)} AS ${name}_nano`;
}

/** The amount `moneySum(…, name)` read (64-bit integers arrive as strings). */
export function moneyOf(row: Record<string, unknown>, name: string): bigint {
  const part = (v: unknown) => (v === null || v === undefined ? 0n : BigInt(v as string));
  return part(row[`${name}_usd`]) * BigInt(NANO_PER_USD) + part(row[`${name}_nano`]);
}

/** The filter as a WHERE condition; column names come from a fixed allow-list, never from input. */
export function whereSql(f: EventFilter): string {
  const parts = [`workspace_id = ${lit(f.workspaceId)}`];
  if (f.from !== undefined) parts.push(`ts_start >= ${int(f.from)}`);
  if (f.to !== undefined) parts.push(`ts_start < ${int(f.to)}`);
  if (f.from !== undefined) parts.push(dayBound(">=", f.from));
  if (f.to !== undefined) parts.push(dayBound("<=", f.to));
  if (f.deploymentOrUnset !== undefined) parts.push(`deployment IN (${lit(f.deploymentOrUnset)}, '')`);
  for (const [k, v] of Object.entries(f.where ?? {})) {
    if (v === undefined) continue;
    if (!isFilterField(k)) throw new Error(`not a filterable field: ${k}`);
    parts.push(`${k} = ${lit(v)}`);
  }
  return parts.join(" AND ");
}

/** The days a ClickHouse 18.16 Date holds: it reads a later one as 1970-01-01 (modern servers clamp). */
const DATE_DAYS = { first: 0, last: Date.UTC(2105, 11, 31) } as const;

/**
 * `day` compared with the UTC day of an epoch ms: partition pruning beside the exact `ts_start` bound. The
 * day is clamped to DATE_DAYS, which drops no row (a record is from before 2100), so a window reaching
 * past them (a comparison window derived from a long one) cannot name a day the server misreads.
 */
export function dayBound(op: ">=" | "<=" | "<", ms: number): string {
  const day = Math.min(Math.max(ms, DATE_DAYS.first), DATE_DAYS.last);
  return `day ${op} toDate(${lit(utcDay(day))})`;
}

/** YYYY-MM-DD of an epoch ms in UTC. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
