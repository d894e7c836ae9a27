// A failed Appender must not come back: DuckDB writes an Appender's pending rows when it is destroyed
// (on garbage collection), which would abort whatever transaction its connection runs by then.
import { DuckDBInstance } from "@duckdb/node-api";
import { describe, expect, it } from "vitest";
import { appendWith, isDuplicateKey } from "../src/store/duckdb/appender.js";

describe("appendWith", () => {
  it("writes the rows and closes the Appender", async () => {
    const c = await (await DuckDBInstance.create(":memory:")).connect();
    await c.run("CREATE TABLE t (id INTEGER PRIMARY KEY)");
    await appendWith(c, "t", (a) => {
      for (const id of [1, 2, 3]) {
        a.appendInteger(id);
        a.endRow();
      }
    });
    expect((await c.runAndReadAll("SELECT sum(id) FROM t")).getRowsJS()).toEqual([[6n]]);
  });

  it("on a duplicate key, drops the rows so a later close (as on GC) cannot break the next transaction", async () => {
    const c = await (await DuckDBInstance.create(":memory:")).connect();
    await c.run("CREATE TABLE t (id INTEGER PRIMARY KEY)");
    await c.run("CREATE TABLE u (x INTEGER)");
    await c.run("INSERT INTO t VALUES (1)");
    let failed: import("@duckdb/node-api").DuckDBAppender | null = null;
    await c.run("BEGIN TRANSACTION");
    const err = await appendWith(c, "t", (a) => {
      failed = a;
      a.appendInteger(1);
      a.endRow();
    }).catch((e: unknown) => e);
    expect(isDuplicateKey(err)).toBe(true);
    await c.run("ROLLBACK");

    await c.run("BEGIN TRANSACTION");
    await c.run("INSERT INTO u VALUES (42)");
    // What destroying the Appender does: close it, writing whatever it still holds.
    (failed as unknown as import("@duckdb/node-api").DuckDBAppender).closeSync();
    await c.run("INSERT INTO u VALUES (43)");
    await c.run("COMMIT");
    expect((await c.runAndReadAll("SELECT count(*) FROM u")).getRowsJS()).toEqual([[2n]]);
    expect((await c.runAndReadAll("SELECT count(*) FROM t")).getRowsJS()).toEqual([[1n]]);
  });

  it("passes on errors of the rows themselves, and tells them from duplicate keys", async () => {
    const c = await (await DuckDBInstance.create(":memory:")).connect();
    await c.run("CREATE TABLE t (id INTEGER NOT NULL)");
    const err = await appendWith(c, "t", (a) => {
      a.appendNull();
      a.endRow();
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(isDuplicateKey(err)).toBe(false);
    expect((await c.runAndReadAll("SELECT count(*) FROM t")).getRowsJS()).toEqual([[0n]]);
  });
});
