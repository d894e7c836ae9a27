/** DuckDB's size units: KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024. */
const UNIT_BYTES: Record<string, number> = {
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/**
 * The least DuckDB may be given. Its open row group of the ~60-column calls table alone pins ~33 MB, and a
 * checkpoint or commit that cannot get memory invalidates the database (every later write and query fails
 * until a restart): with 24–96 MB that came after 5,000 to 630,000 calls appended at full speed.
 */
export const MIN_DUCKDB_MEMORY_BYTES = 128e6;

/** DuckDB's buffer-pool cap (TOLLGATE_DUCKDB_MEMORY_LIMIT, default 256MB), e.g. "256MB", validated. */
export function duckDbMemoryLimitFrom(env: NodeJS.ProcessEnv = process.env): string {
  const v = env.TOLLGATE_DUCKDB_MEMORY_LIMIT || "256MB";
  const m = /^(\d+(?:\.\d+)?)\s*(KB|MB|GB|KiB|MiB|GiB)$/i.exec(v);
  if (!m)
    throw new Error(`TOLLGATE_DUCKDB_MEMORY_LIMIT must look like 256MB or 1GB, got ${JSON.stringify(v)}`);
  if (Number(m[1]) * UNIT_BYTES[m[2]!.toLowerCase()]! < MIN_DUCKDB_MEMORY_BYTES)
    throw new Error(
      `TOLLGATE_DUCKDB_MEMORY_LIMIT must be at least 128MB (got ${v}): with less, DuckDB runs out of memory ` +
        "committing or checkpointing calls under load and then refuses every write until restarted",
    );
  return v;
}
