const MIN_BLOCK = 16 * 1024;
const MAX_BLOCK = 256 * 1024;

/**
 * TOLLGATE_DUCKDB_BLOCK_SIZE: the block size, in bytes, of a database file created from now on (an existing
 * file keeps its own), or undefined for DuckDB's 262144. Until a checkpoint, rows appended to a table sit in
 * blocks of this size per column, so on the ~60-column calls table 16384 holds half the memory under a
 * steady trickle of calls; analytics over the file then read more, smaller blocks.
 */
export function duckDbBlockSizeFrom(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.TOLLGATE_DUCKDB_BLOCK_SIZE;
  if (v === undefined || v === "") return undefined;
  const n = /^\d{1,7}$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= MIN_BLOCK && n <= MAX_BLOCK && (n & (n - 1)) === 0))
    throw new Error(
      `TOLLGATE_DUCKDB_BLOCK_SIZE must be a power of two from ${MIN_BLOCK} to ${MAX_BLOCK} bytes, got ${JSON.stringify(v)}`,
    );
  return n;
}
