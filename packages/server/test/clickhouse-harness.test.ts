// The ClickHouse test harness itself: real servers start from scripts/services/clickhouse, take
// LowCardinality columns (18.16 needs the profile setting), and two shards form a Distributed cluster.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startClickHouse, TEST_CLUSTER, type TestClickHouse } from "./clickhouse-server.js";

async function query(url: string, sql: string): Promise<string> {
  const res = await fetch(url, { method: "POST", body: sql });
  const text = await res.text();
  if (!res.ok) throw new Error(`ClickHouse ${res.status} for ${sql}: ${text}`);
  return text.trim();
}

describe("startClickHouse (one server)", () => {
  let ch: TestClickHouse;
  beforeAll(async () => {
    ch = await startClickHouse();
  });
  afterAll(() => ch?.stop());

  it("answers SELECT version() over HTTP on a loopback port", async () => {
    expect(ch.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(ch.urls).toEqual([ch.url]);
    expect(ch.cluster).toBeNull();
    expect(await query(ch.url, "SELECT version()")).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("creates and reads a LowCardinality(String) column", async () => {
    await query(
      ch.url,
      "CREATE TABLE lc_probe (id UInt32, model LowCardinality(String)) ENGINE = MergeTree() ORDER BY id",
    );
    await query(ch.url, "INSERT INTO lc_probe VALUES (1, 'gpt'), (2, 'claude'), (3, 'gpt')");
    expect(await query(ch.url, "SELECT toTypeName(model) FROM lc_probe LIMIT 1")).toBe(
      "LowCardinality(String)",
    );
    expect(
      await query(
        ch.url,
        "SELECT model, count() AS n FROM lc_probe GROUP BY model ORDER BY model FORMAT CSV",
      ),
    ).toBe('"claude",1\n"gpt",2');
  });
});

describe("startClickHouse({ shards: 2 })", () => {
  let ch: TestClickHouse;
  beforeAll(async () => {
    ch = await startClickHouse({ shards: 2 });
  });
  afterAll(() => ch?.stop());

  it("starts two servers that both define the test cluster", async () => {
    expect(ch.cluster).toBe(TEST_CLUSTER);
    expect(ch.urls).toHaveLength(2);
    expect(new Set(ch.urls).size).toBe(2);
    for (const url of ch.urls) {
      const rows = await query(
        url,
        `SELECT shard_num, port FROM system.clusters WHERE cluster = '${TEST_CLUSTER}' ORDER BY shard_num FORMAT CSV`,
      );
      expect(rows).toBe(ch.tcpPorts.map((port, i) => `${i + 1},${port}`).join("\n"));
    }
  });

  it("a Distributed table returns the rows inserted on both shards", async () => {
    for (const url of ch.urls) {
      await query(url, "CREATE TABLE calls_local (id UInt64, cost Int64) ENGINE = MergeTree() ORDER BY id");
      await query(
        url,
        `CREATE TABLE calls_all AS calls_local ENGINE = Distributed(${ch.cluster}, default, calls_local, rand())`,
      );
    }
    await query(ch.urls[0]!, "INSERT INTO calls_local VALUES (1, 10), (2, 20), (3, 30)");
    await query(ch.urls[1]!, "INSERT INTO calls_local VALUES (4, 40), (5, 50)");
    for (const url of ch.urls) {
      expect(await query(url, "SELECT count() FROM calls_local")).not.toBe("5");
      expect(await query(url, "SELECT count() AS n, sum(cost) AS cost_sum FROM calls_all FORMAT CSV")).toBe(
        "5,150",
      );
    }
  });
});
