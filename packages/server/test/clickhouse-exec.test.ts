// The HTTP connection to ClickHouse against a real server behind a TCP relay that hangs up on chosen
// connections, as a server closing a kept-alive socket does: reads and DDL are sent again, inserts are not.
import { connect, createServer, type Server, type Socket } from "node:net";
import { buildCallRecord, PricingEngine, uuidv7 } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalClaims } from "../src/store/clickhouse/claims.js";
import { HttpExec } from "../src/store/clickhouse/exec.js";
import { openClickHouse } from "../src/store/clickhouse/open.js";
import { ClickHouseStore } from "../src/store/clickhouse/store.js";
import { startClickHouse, type TestClickHouse } from "./clickhouse-server.js";

/**
 * Relays to `port`. While `hangUps` > 0, the connection that carries the next request is destroyed when
 * the request arrives (a kept-alive one included), as a server that has just closed it would.
 */
class HangingRelay {
  hangUps = 0;
  /**
   * While > 0, the client's connection is cut as soon as the next INSERT has arrived, and the INSERT
   * reaches the server 200 ms later on a connection of its own: a server slow to take an insert whose
   * client gave up (a timeout, a lost connection) still commits it.
   */
  lateInserts = 0;
  requests = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  constructor(port: number) {
    this.#server = createServer((client) => {
      const upstream = connect(port, "127.0.0.1");
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on("close", () => {
          this.#sockets.delete(s);
          end();
        });
        s.on("error", end);
      }
      let late: Buffer[] | null = null;
      client.on("data", (chunk: Buffer) => {
        if (late) return void late.push(chunk);
        // Each test sends its requests one at a time, so a chunk starting with a method is a new request.
        if (/^(GET|POST) /.test(chunk.toString("latin1", 0, 5))) {
          this.requests++;
          if (this.hangUps > 0) {
            this.hangUps--;
            return end();
          }
          if (this.lateInserts > 0 && /query=INSERT/i.test(chunk.toString("latin1", 0, 200))) {
            this.lateInserts--;
            const held = [chunk];
            late = held;
            setTimeout(() => {
              end(); // the client's request fails; the server has not seen it yet
              const later = connect(port, "127.0.0.1");
              later.on("error", () => {});
              later.on("data", () => later.destroy());
              setTimeout(() => later.write(Buffer.concat(held)), 200);
            }, 50);
            return;
          }
        }
        upstream.write(chunk);
      });
      upstream.pipe(client);
    });
  }
  listen(): Promise<string> {
    return new Promise((resolve) =>
      this.#server.listen(0, "127.0.0.1", () =>
        resolve(`http://127.0.0.1:${(this.#server.address() as { port: number }).port}`),
      ),
    );
  }
  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

describe("HttpExec on a connection the server hangs up", () => {
  let ch: TestClickHouse;
  let relay: HangingRelay;
  let exec: HttpExec;
  beforeAll(async () => {
    ch = await startClickHouse();
    relay = new HangingRelay(Number(new URL(ch.url).port));
    exec = new HttpExec(await relay.listen());
    await exec.command("CREATE TABLE IF NOT EXISTS hang_probe (id UInt32) ENGINE = MergeTree() ORDER BY id");
  });
  afterAll(async () => {
    await exec?.close();
    await relay?.close();
    await ch?.stop();
  });

  it("sends a SELECT again on a fresh socket", async () => {
    relay.hangUps = 1;
    const before = relay.requests;
    expect(await exec.rows<{ x: string }>("SELECT toUInt64(41) + 1 AS x")).toEqual([{ x: "42" }]);
    expect(relay.requests - before).toBe(2);
  });

  it("sends DDL again", async () => {
    relay.hangUps = 2;
    await exec.command("CREATE TABLE IF NOT EXISTS hang_probe2 (id UInt32) ENGINE = MergeTree() ORDER BY id");
    expect(await exec.rows("EXISTS TABLE hang_probe2")).toEqual([{ result: 1 }]);
  });

  it("gives up after a bounded number of tries", async () => {
    relay.hangUps = 3;
    await expect(exec.rows("SELECT 1")).rejects.toThrow(/socket hang up|ECONNRESET/i);
    expect(relay.hangUps).toBe(0);
  });

  it("does not send an insert twice: the error reaches the caller and nothing is stored", async () => {
    relay.hangUps = 1;
    await expect(exec.insert("hang_probe", [{ id: 1 }])).rejects.toThrow(/socket hang up|ECONNRESET/i);
    expect(await exec.rows("SELECT count() AS n FROM hang_probe")).toEqual([{ n: "0" }]);
  });
});

describe("ClickHouse store, an insert that lands after its client gave up", () => {
  let ch: TestClickHouse;
  let relay: HangingRelay;
  let store: ClickHouseStore;
  const DB = "tg_lost_answer";
  beforeAll(async () => {
    ch = await startClickHouse();
    await (await openClickHouse({ url: `${ch.url}/${DB}` })).close(); // the schema
    relay = new HangingRelay(Number(new URL(ch.url).port));
    const layout = { database: DB, cluster: null, onClusterDdl: false };
    store = new ClickHouseStore(new HttpExec(`${await relay.listen()}/`), layout, new LocalClaims(1_000));
  });
  afterAll(async () => {
    await store?.close();
    await relay?.close();
    await ch?.stop();
  });

  it("keeps the batch's ids claimed until the claims lapse: the retry finds them stored, not free", async () => {
    const engine = new PricingEngine();
    const records = [1, 2, 3].map((i) => {
      const b = buildCallRecord(
        {
          event_id: uuidv7(),
          ts_start: Date.now(),
          provider: "openai",
          model: "gpt-4o-mini",
          input_uncached_tokens: i,
        },
        { workspaceId: "default", engine },
      );
      if (!b.ok) throw new Error(JSON.stringify(b.errors));
      return b.record;
    });
    relay.lateInserts = 1;
    await expect(store.append(records)).rejects.toThrow(/socket hang up|ECONNRESET/i);
    // Retried at once (as the recorder's spool replay or an ingest client may): it waits for the claims
    // to lapse (1 s here), by when the first insert has landed, and finds the ids stored.
    const retry = await store.append(records);
    expect(retry.inserted.size).toBe(0);
    expect(await store.count({ workspaceId: "default" })).toBe(3);
  });
});
