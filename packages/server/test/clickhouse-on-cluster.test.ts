// The ClickHouse store on a cluster whose schema goes through distributed DDL: two 18.16 shards sharing one
// ZooKeeper, opened with a cluster and no node list, so every CREATE runs once with ON CLUSTER and the
// servers' DDL workers create it on both shards. The same generated calls go into it and into the embedded
// DuckDB store; the answers must match, and the events must really be spread over both shards.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openClickHouse } from "../src/store/clickhouse/open.js";
import type { ClickHouseStore } from "../src/store/clickhouse/store.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { type EventFilter, SEGMENT_DIMENSIONS, SPEND_DIMENSIONS, type Store } from "../src/store/types.js";
import { utcMonthStart } from "../src/time.js";
import { startClickHouse, type TestClickHouse } from "./clickhouse-server.js";
import { demoRecords } from "./conformance-data.js";

const DAY = 86_400_000;
const DB = "tg_oncluster";
const now = Date.now();
// Over more than two months, so a purge always has a whole month to drop.
const records = demoRecords({ days: 75, callsPerDay: 100, seed: 23, now });

let ch: TestClickHouse;
let store: ClickHouseStore;
let duck: DuckDbStore;
let dir: string;

async function query(url: string, sql: string): Promise<string> {
  const res = await fetch(url, { method: "POST", body: sql });
  const text = await res.text();
  if (!res.ok) throw new Error(`ClickHouse ${res.status} for ${sql}: ${text}`);
  return text.trim();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tg-oncluster-"));
  [ch, duck] = await Promise.all([
    startClickHouse({ shards: 2, zookeeper: true }),
    DuckDbStore.open(join(dir, "duck")),
  ]);
  store = await openClickHouse({ url: `${ch.url}/${DB}`, cluster: ch.cluster });
  for (const s of [store, duck] as Store[])
    for (let i = 0; i < records.length; i += 2000) {
      const r = await s.append(records.slice(i, i + 2000));
      expect(r.inserted.size).toBe(Math.min(2000, records.length - i));
    }
}, 60_000);

afterAll(async () => {
  await Promise.all([store?.close(), duck?.close()]);
  await ch?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** JSON with bigints as strings: answers compared as data. */
const plain = (v: unknown): unknown =>
  JSON.parse(JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x)));

/** The cluster store answers exactly like DuckDB. */
async function same(what: string, q: (s: Store) => Promise<unknown>): Promise<unknown> {
  const [a, b] = await Promise.all([q(store), q(duck)]);
  expect(plain(a), what).toEqual(plain(b));
  return plain(a);
}

const eventsPerShard = () =>
  Promise.all(ch.urls.map(async (url) => Number(await query(url, `SELECT count() FROM ${DB}.events_local`))));

describe("ClickHouse 18.16, two shards, schema through ON CLUSTER (ZooKeeper)", () => {
  it("the schema reached both shards through the distributed DDL queue", async () => {
    expect(ch.zookeeper).toMatch(/^127\.0\.0\.1:\d+$/);
    const tables = await Promise.all(
      ch.urls.map((url) =>
        query(
          url,
          `SELECT name, engine FROM system.tables WHERE database = '${DB}' ORDER BY name FORMAT TSV`,
        ),
      ),
    );
    expect(tables[1]).toBe(tables[0]);
    expect(tables[0]).toContain("events\tDistributed");
    expect(tables[0]).toContain("events_local\tReplacingMergeTree");
    expect(tables[0]).toContain("daily_summary_mv\tMaterializedView");
    // One queue entry per statement (database, 9 local + 9 Distributed tables, 2 views).
    const entries = Number(
      await query(ch.url, "SELECT count() FROM system.zookeeper WHERE path = '/clickhouse/task_queue/ddl'"),
    );
    expect(entries).toBeGreaterThanOrEqual(21);
  });

  it("opening again is idempotent (IF NOT EXISTS … ON CLUSTER) and keeps the data", async () => {
    const again = await openClickHouse({ url: `${ch.url}/${DB}`, cluster: ch.cluster });
    try {
      expect(await again.count({ workspaceId: "default" })).toBe(records.length);
    } finally {
      await again.close();
    }
  });

  it("both shards hold part of the events, and together all of them", async () => {
    const counts = await eventsPerShard();
    for (const n of counts) expect(n).toBeGreaterThan(0);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(records.length);
    expect(await store.count({ workspaceId: "default" })).toBe(records.length);
  });

  it("a retried batch stores nothing new", async () => {
    const again = await store.append(records.slice(300, 900));
    expect([...again.inserted]).toEqual([]);
    expect(await eventsPerShard().then((c) => c.reduce((a, b) => a + b, 0))).toBe(records.length);
  });

  const to = Math.floor(now / DAY) * DAY;
  const windows: Record<string, EventFilter & { from: number; to: number }> = {
    "all time": { workspaceId: "default", from: 0, to: now + DAY },
    "last 14 days": { workspaceId: "default", from: to - 14 * DAY, to },
    "prod or unset, 30 days, mid-day bounds": {
      workspaceId: "default",
      from: to - 30 * DAY + 3_600_123,
      to: to - 2 * DAY - 777,
      deploymentOrUnset: "prod",
    },
    "one feature": { workspaceId: "default", from: 0, to: now + DAY, where: { feature: "summarize" } },
  };
  for (const [name, w] of Object.entries(windows))
    it(`answers like DuckDB: ${name}`, async () => {
      expect(await same("count", (s) => s.count(w))).toBeGreaterThan(0);
      for (const by of SPEND_DIMENSIONS) await same(`spend by ${by}`, (s) => s.spend(w, by));
      await same("segments", (s) => s.segments(w, SEGMENT_DIMENSIONS, true));
      await same("user-days", (s) => s.userDays(w, 5));
    });

  it("retention drops whole months on every shard", async () => {
    const before = await same("spend by day", (s) => s.spend({ workspaceId: "default" }, "day"));
    const rawBefore = utcMonthStart(now, -1);
    const deleted = await same("purge", (s) => s.purge(rawBefore, null));
    expect((deleted as { raw_deleted: number }).raw_deleted).toBeGreaterThan(0);
    const old = Number(
      await query(
        ch.url,
        `SELECT count() FROM cluster('${ch.cluster}', system, parts)
         WHERE active AND database = '${DB}' AND table = 'events_local' AND toUInt32(partition) < ${
           new Date(rawBefore).getUTCFullYear() * 100 + new Date(rawBefore).getUTCMonth() + 1
         }`,
      ),
    );
    expect(old).toBe(0);
    for (const n of await eventsPerShard()) expect(n).toBeGreaterThan(0);
    await same("count after purge", (s) => s.count({ workspaceId: "default" }));
    expect(await same("spend by day after purge", (s) => s.spend({ workspaceId: "default" }, "day"))).toEqual(
      before,
    );
  });
});
