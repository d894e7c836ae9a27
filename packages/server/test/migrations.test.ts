import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { COLUMNS } from "../src/store/duckdb/columns.js";
import { openDuckDb } from "../src/store/duckdb/open.js";

it("the migrated events table has exactly the Appender's columns, in its order", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-migrations-"));
  try {
    const { instance, conn } = await openDuckDb(dir);
    const res = await conn.runAndReadAll(
      "SELECT column_name FROM information_schema.columns WHERE table_name = 'events' ORDER BY ordinal_position",
    );
    expect(res.getRowsJS().map((r) => r[0])).toEqual(COLUMNS.map((c) => c.name));
    const versions = await conn.runAndReadAll("SELECT version FROM schema_migrations ORDER BY version");
    expect(versions.getRowsJS().map((r) => Number(r[0]))).toEqual([1, 2, 3, 4, 5]);
    conn.closeSync();
    instance.closeSync();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
