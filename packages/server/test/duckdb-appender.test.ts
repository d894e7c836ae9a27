// A failed Appender must not come back: DuckDB writes an Appender's pending rows when it is destroyed
// (on garbage collection), which would abort whatever transaction its connection runs by then.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { afterAll, describe, expect, it } from "vitest";
import { appendInSlices, appendWith, isDuplicateKey } from "../src/store/duckdb/appender.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { recordKey } from "../src/store/types.js";
import { demoRecords } from "./conformance-data.js";

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

describe("appendInSlices", () => {
  it("writes at most perAppender rows per Appender, the event loop let run between two", async () => {
    const c = await (await DuckDBInstance.create(":memory:")).connect();
    await c.run("CREATE TABLE t (id INTEGER PRIMARY KEY)");
    const slices: number[][] = [];
    let turned = true;
    const turnsBetween: boolean[] = [];
    const fill = (a: import("@duckdb/node-api").DuckDBAppender, only: readonly number[] | undefined) => {
      turnsBetween.push(turned);
      turned = false;
      setImmediate(() => {
        turned = true;
      });
      slices.push([...only!]);
      for (const id of only!) {
        a.appendInteger(id);
        a.endRow();
      }
    };
    await appendInSlices(c, "t", { total: 250 }, 100, fill);
    expect(slices.map((s) => [s[0], s.at(-1), s.length])).toEqual([
      [0, 99, 100],
      [100, 199, 100],
      [200, 249, 50],
    ]);
    expect(turnsBetween).toEqual([true, true, true]);
    slices.length = 0;
    await appendInSlices(c, "t", { total: 0, only: [300, 301, 302] }, 2, fill);
    expect(slices).toEqual([[300, 301], [302]]);
    expect((await c.runAndReadAll("SELECT count(*), sum(id) FROM t")).getRowsJS()).toEqual([
      [253n, 31125n + 903n],
    ]);
  });
});

describe("a store writing a few hundred rows per Appender (in-process: the event loop runs between)", () => {
  const dir = mkdtempSync(join(tmpdir(), "tg-slices-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const records = demoRecords({ days: 1, callsPerDay: 1000, seed: 5, now: Date.UTC(2026, 11, 4, 12) });

  it("stores a batch whole and sorts out duplicates that fail a later slice", async () => {
    const store = await DuckDbStore.open(dir, { rowsPerAppender: 100, closeDaysAtOpen: false });
    try {
      expect(records.length).toBeGreaterThan(650);
      const first = await store.append(records.slice(0, 400));
      expect(first.inserted.size).toBe(400);
      // 250 new records first, then 250 stored ones: the duplicates fail a later slice of the same batch.
      const mixed = [...records.slice(400, 650), ...records.slice(150, 400)];
      const second = await store.append(mixed);
      expect(second.inserted.size).toBe(250);
      expect(second.inserted).toEqual(
        new Set(records.slice(400, 650).map((r) => recordKey(r.workspace_id, r.event_id))),
      );
      const back = await store.query({ workspaceId: "default", limit: 10_000 });
      expect(back.length).toBe(650);
      expect(new Set(back.map((r) => r.event_id)).size).toBe(650);
    } finally {
      await store.close();
    }
  });
});
