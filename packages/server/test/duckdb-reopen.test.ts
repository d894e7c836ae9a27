import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DuckDBInstance } from "@duckdb/node-api";
import { buildCallRecord, type CallRecord, PricingEngine, uuidv7 } from "@tollgate/core";
import { afterAll, describe, expect, it, vi } from "vitest";
import { reopeningStore } from "../src/store/duckdb/reopening.js";
import { openStore } from "../src/store/open-store.js";
import { smallDisk, unmount } from "./small-disk.js";

const dir = mkdtempSync(join(tmpdir(), "tollgate-reopen-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const engine = new PricingEngine();
let n = 0;
function batch(size: number): CallRecord[] {
  return Array.from({ length: size }, () => {
    const built = buildCallRecord(
      {
        event_id: uuidv7(),
        ts_start: Date.now(),
        provider: "openai",
        model: "gpt-4.1-nano",
        input_uncached_tokens: 100 + (n % 50),
        output_tokens: 20,
        feature: `f${n % 7}`,
        user_id: `user-${n++}`,
      },
      { workspaceId: "default", engine },
    );
    if (!built.ok) throw new Error(JSON.stringify(built.errors));
    return built.record;
  });
}

/** A stand-in store: DuckDB's own invalidation is exercised on a full disk below, where the machine allows. */
class StandIn {
  calls = 0;
  closed = false;
  constructor(
    readonly n: number,
    public failWith: string | null = null,
  ) {}
  async count(): Promise<number> {
    this.calls++;
    if (this.closed) throw new Error("connection closed");
    if (this.failWith) throw new Error(this.failWith);
    return this.n;
  }
  async ping(): Promise<number> {
    if (this.failWith) throw new Error(this.failWith);
    return this.n;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}
const INVALIDATED =
  "FATAL Error: Failed: database has been invalidated because of a previous fatal error. The database must be restarted prior to being used again.";

describe("a store whose database DuckDB invalidated is opened again (reopeningStore)", () => {
  it("the call that met it fails; later ones wait for the store opened again; one reopen for many failures", async () => {
    const opened: StandIn[] = [];
    const logged: string[] = [];
    const store = await reopeningStore(
      async () => {
        await new Promise((r) => setTimeout(r, 20));
        opened.push(new StandIn(opened.length));
        return opened.at(-1)!;
      },
      (m) => logged.push(m),
    );
    expect(await store.count()).toBe(0);
    opened[0]!.failWith = INVALIDATED;
    const failing = await Promise.allSettled([store.count(), store.count(), store.count()]);
    expect(failing.every((r) => r.status === "rejected")).toBe(true);
    expect(await store.count()).toBe(1); // waited for the reopen
    expect(opened).toHaveLength(2);
    expect(opened[0]!.closed).toBe(true);
    expect(logged).toEqual([
      "store: DuckDB invalidated the database (FATAL Error: Failed: database has been invalidated because of a previous fatal error. The database must be restarted prior to being used again.); opening it again",
      "store: database opened again",
    ]);
    // Another error is the caller's, not a reason to reopen.
    opened[1]!.failWith = "Constraint Error: duplicate key";
    await expect(store.count()).rejects.toThrow("duplicate key");
    expect(opened).toHaveLength(2);
    await store.close();
    expect(opened[1]!.closed).toBe(true);
  });

  it("a reopen that fails is tried again at a call a second later; calls meanwhile get its error", async () => {
    let refuse: string | null = null;
    const opened: StandIn[] = [];
    let tries = 0;
    const store = await reopeningStore(
      async () => {
        tries++;
        if (refuse) throw new Error(refuse);
        opened.push(new StandIn(opened.length));
        return opened.at(-1)!;
      },
      () => {},
    );
    opened[0]!.failWith = INVALIDATED;
    refuse = "IO Error: No space left on device";
    await expect(store.count()).rejects.toThrow("invalidated");
    await expect(store.count()).rejects.toThrow("No space left on device");
    await expect(store.count()).rejects.toThrow("No space left on device");
    expect(tries).toBe(2); // the first open, and one reopen
    refuse = null;
    await new Promise((r) => setTimeout(r, 1_050));
    expect(await store.count()).toBe(1);
    expect(tries).toBe(3);
    await store.close();
  });

  it("a method set on it from outside (a wrapper, a stub) answers until the one read before is set back", async () => {
    const store = await reopeningStore(
      async () => new StandIn(7),
      () => {},
    );
    const original = store.count;
    expect(store.count).toBe(original); // one function per method
    store.count = async () => 42;
    expect(await store.count()).toBe(42);
    store.count = original;
    expect(await store.count()).toBe(7);
    await store.close();
  });

  it("a call on the store before it was opened again, failing late, does not open the new one again", async () => {
    let release!: () => void;
    const slow = new Promise<void>((r) => {
      release = r;
    });
    const first = new StandIn(0);
    const opened: StandIn[] = [];
    const store = await reopeningStore(
      async () => {
        opened.push(opened.length === 0 ? first : new StandIn(opened.length));
        return opened.at(-1)!;
      },
      () => {},
    );
    // A call held on the first store, which will fail late, as an invalidated database answers.
    first.count = async () => {
      await slow;
      throw new Error(INVALIDATED);
    };
    const late = store.count();
    // Meanwhile another call meets the invalidation, and the store is opened again.
    first.failWith = INVALIDATED;
    await expect(store.ping()).rejects.toThrow("invalidated");
    expect(await store.ping()).toBe(1);
    release();
    await expect(late).rejects.toThrow("invalidated");
    await new Promise((r) => setTimeout(r, 20));
    expect(await store.ping()).toBe(1);
    expect(opened).toHaveLength(2);
    await store.close();
  });

  it("closes while broken (a reopen failed) without closing the broken store a second time", async () => {
    let opens = 0;
    const first = new StandIn(0, INVALIDATED);
    let closes = 0;
    first.close = async () => {
      if (closes++ > 0) throw new Error("closed twice");
    };
    const store = await reopeningStore(
      async () => {
        if (opens++ > 0) throw new Error("No space left on device");
        return first;
      },
      () => {},
    );
    await expect(store.count()).rejects.toThrow("invalidated");
    await expect(store.count()).rejects.toThrow("No space left on device");
    await store.close();
    expect(closes).toBe(1);
  });

  it("once closed, it does not open the store again", async () => {
    let opens = 0;
    const first = new StandIn(0, INVALIDATED);
    const store = await reopeningStore(
      async () => (opens++ === 0 ? first : new StandIn(opens)),
      () => {},
    );
    await store.close();
    await expect(store.count()).rejects.toThrow("connection closed");
    expect(opens).toBe(1);
  });
});

const disk = smallDisk(dir);
afterAll(() => {
  if (disk) unmount(disk);
});

describe.skipIf(disk === null)("the embedded store on a disk that fills up", () => {
  it("a checkpoint that finds the disk full invalidates DuckDB's database; with room again the store opens it again, nothing lost", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const store = await openStore(join(disk!, "data"), { thread: false });
    let committed = 0;
    for (let i = 0; i < 20; i++) committed += (await store.append(batch(500))).inserted.size;
    const filler = join(disk!, "filler");
    try {
      writeFileSync(filler, Buffer.alloc(64 * 1024 * 1024));
    } catch {} // ENOSPC: the disk is full
    const conn = await (store as unknown as { instance: DuckDBInstance }).instance.connect();
    await expect(conn.run("CHECKPOINT")).rejects.toThrow(/FATAL.*No space left on device/s);
    conn.closeSync();
    // Every call DuckDB refuses from now on until the database is opened again: the first that meets that
    // fails, and, while the disk has no room, so does opening it again (its WAL cannot be checkpointed).
    await expect(store.count({ workspaceId: "default" })).rejects.toThrow(/invalidated/);
    await expect(store.append(batch(10))).rejects.toThrow();
    rmSync(filler);
    await new Promise((r) => setTimeout(r, 1_050));
    expect(await store.count({ workspaceId: "default" })).toBe(committed);
    expect((await store.append(batch(10))).inserted.size).toBe(10);
    expect(await store.count({ workspaceId: "default" })).toBe(committed + 10);
    expect(logged.mock.calls.at(-1)).toEqual(["store: database opened again"]);
    logged.mockRestore();
    await store.close();
  });
});
