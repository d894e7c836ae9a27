// For a test's vi.mock of @duckdb/node-api: every connection of every DuckDB instance runs `settings()` first
// (asked when it connects, so a test may change them), as on a machine whose DuckDB has little memory.
import type * as duckdb from "@duckdb/node-api";

export function withConnectionSettings(api: typeof duckdb, settings: () => readonly string[]): typeof duckdb {
  const create: typeof duckdb.DuckDBInstance.create = async (...args) => {
    const db = await api.DuckDBInstance.create(...args);
    const connect = db.connect.bind(db);
    db.connect = async () => {
      const conn = await connect();
      for (const sql of settings()) await conn.run(sql);
      return conn;
    };
    return db;
  };
  return { ...api, DuckDBInstance: { ...api.DuckDBInstance, create } } as typeof duckdb;
}
