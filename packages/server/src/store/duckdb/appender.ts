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

/** A primary-key violation, as DuckDB reports it from an Appender or an INSERT. */
export const isDuplicateKey = (e: unknown): boolean =>
  e instanceof Error && /violates primary key/i.test(e.message);
