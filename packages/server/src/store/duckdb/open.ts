import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { DataDirLockedError } from "../../data-dir-lock.js";
import { duckDbBlockSizeFrom } from "./block-size.js";
import { duckDbMemoryLimitFrom } from "./memory-limit.js";
import { MIGRATIONS } from "./migrations.js";

/** Opens (creating if needed) the DuckDB file of a data dir and brings its schema up to date. */
export async function openDuckDb(
  dataDir: string,
): Promise<{ instance: DuckDBInstance; conn: DuckDBConnection; file: string }> {
  const blockSize = duckDbBlockSizeFrom(); // before anything is made: a bad setting leaves nothing behind
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, "tollgate.duckdb");
  let instance: DuckDBInstance;
  try {
    instance = await DuckDBInstance.create(
      file,
      blockSize === undefined ? undefined : { default_block_size: String(blockSize) },
    );
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/lock/i.test(msg)) {
      const pid = /PID (\d+)/.exec(msg)?.[1];
      throw new DataDirLockedError(
        `data dir ${dataDir} is in use by another Tollgate process${pid ? ` (pid ${pid})` : ""}. ` +
          "Stop it, or point this one elsewhere with --data-dir / TOLLGATE_DATA_DIR.",
      );
    }
    throw e;
  }
  const conn = await instance.connect();
  // Checkpointing every 16 MB of WAL (the default) stalls commits under sustained ingest; the WAL is
  // replayed on start after a crash either way. Slower traffic is checkpointed sooner (CheckpointPacer).
  await conn.run("SET checkpoint_threshold = '256MB'");
  // DuckDB would otherwise cache up to 80% of RAM; an embedded ledger shares its process with the gateway.
  await conn.run(`SET memory_limit = '${duckDbMemoryLimitFrom()}'`);
  await migrate(conn);
  return { instance, conn, file };
}

async function migrate(conn: DuckDBConnection): Promise<void> {
  await conn.run(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)",
  );
  const applied = new Set(
    (await conn.runAndReadAll("SELECT version FROM schema_migrations")).getRowsJS().map((r) => Number(r[0])),
  );
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    await conn.run("BEGIN TRANSACTION");
    try {
      for (const sql of m.sql) await conn.run(sql);
      await conn.run("INSERT INTO schema_migrations (version) VALUES ($1)", [m.version]);
      await conn.run("COMMIT");
    } catch (e) {
      await conn.run("ROLLBACK");
      throw e;
    }
  }
}
