import { setImmediate as nextTurn } from "node:timers/promises";
import type { DuckDBAppender, DuckDBConnection } from "@duckdb/node-api";

/**
 * Opens an Appender on `table`, lets `fill` write its rows, and closes it, which writes them. When that
 * fails the rows are dropped from the Appender: DuckDB would otherwise write them again when the Appender
 * is garbage-collected, inside whatever transaction its connection runs by then, and abort that one.
 */
export async function appendWith(
  conn: DuckDBConnection,
  table: string,
  fill: (a: DuckDBAppender) => void,
  where: { schema: string; catalog: string } | null = null,
): Promise<void> {
  const a = where
    ? await conn.createAppender(table, where.schema, where.catalog)
    : await conn.createAppender(table);
  try {
    fill(a);
    a.closeSync();
  } catch (e) {
    try {
      a.clear();
    } catch {
      // The Appender is unusable either way; the first error is the one that says why.
    }
    throw e;
  }
}

/**
 * appendWith over rows `0..total` (or the positions in `only`), at most `perAppender` per Appender, the
 * event loop let run between two. Closing an Appender writes its rows synchronously on the calling thread,
 * ~6 µs a row into the calls table: a store on the gateway's own event loop held it for up to 19 ms per
 * batch under load. All in the caller's transaction, so the slices land together or not at all.
 */
export async function appendInSlices(
  conn: DuckDBConnection,
  table: string,
  rows: { total: number; only?: readonly number[] | undefined },
  perAppender: number,
  fill: (a: DuckDBAppender, only: readonly number[] | undefined) => void,
): Promise<void> {
  const count = rows.only ? rows.only.length : rows.total;
  if (count <= perAppender) return appendWith(conn, table, (a) => fill(a, rows.only));
  for (let off = 0; off < count; off += perAppender) {
    if (off > 0) await nextTurn();
    const end = Math.min(count, off + perAppender);
    const slice = rows.only
      ? rows.only.slice(off, end)
      : Array.from({ length: end - off }, (_, i) => off + i);
    await appendWith(conn, table, (a) => fill(a, slice));
  }
}

/** A primary-key violation, as DuckDB reports it from an Appender or an INSERT. */
export const isDuplicateKey = (e: unknown): boolean =>
  e instanceof Error && /violates primary key/i.test(e.message);
