import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CallRecord, PricingEngine, uuidv7 } from "@tollgate/core";
import { afterAll, describe, expect, it, vi } from "vitest";
import { Recorder } from "../src/gateway/recorder.js";
import { Spool } from "../src/gateway/spool.js";
import { GroupCommitWriter } from "../src/ingest/writer.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { buildRecord } from "./conformance-data.js";

const dir = mkdtempSync(join(tmpdir(), "tollgate-recorder-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A spool on a full disk: every write fails as the file system would fail it. */
class FullDisk extends Spool {
  override spill(): void {
    throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
  }
}

/** A spool on a nearly full disk: a file of more records than `room` fails whole, as a write past the end would. */
class NearlyFullDisk extends Spool {
  room = 0;
  override spill(records: CallRecord[]): void {
    if (records.length > this.room)
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    this.room -= records.length;
    super.spill(records);
  }
}

function call(i: number): Record<string, unknown> {
  return {
    event_id: uuidv7(),
    ts_start: Date.now() - 1000,
    provider: "openai",
    api: "openai.chat",
    model: "gpt-4o-mini",
    input_uncached_tokens: 100 + i,
    output_tokens: 10,
    feature: "spool-test",
  };
}

/** Builds a record the way the gateway does (money as bigint). */
const built = (i: number, extra: Record<string, unknown> = {}): CallRecord =>
  buildRecord({ ...call(i), ...extra });

describe("recorder and spool", () => {
  it("spools calls while the store is down and replays them, exactly once, when it is back", async () => {
    const dataDir = join(dir, "data");
    const spoolDir = join(dir, "spool");
    const engine = new PricingEngine();

    // A real store that goes away: writes to it fail from then on.
    const first = await DuckDbStore.open(dataDir);
    const down = new Recorder(new GroupCommitWriter(first), engine, new Spool(spoolDir), {
      replayMs: 60_000,
    });
    await first.close();
    const costs: bigint[] = [];
    for (let i = 0; i < 50; i++) costs.push(down.record(call(i), "default")!.record.cost_nanousd);
    await down.flush();
    down.close();
    expect(costs.every((c) => c > 0n)).toBe(true); // priced for the reply headers even with the store down
    const spooled = new Spool(spoolDir);
    expect(spooled.depth).toBe(50);
    expect(readdirSync(spoolDir).length).toBeGreaterThan(0);

    // The store is back (a new process, say): the spool is replayed and emptied.
    const second = await DuckDbStore.open(dataDir);
    const up = new Recorder(new GroupCommitWriter(second), engine, spooled, { replayMs: 60_000 });
    await up.flush();
    expect(spooled.depth).toBe(0);
    expect(readdirSync(spoolDir)).toEqual([]);
    const stored = await second.query({ workspaceId: "default", limit: 1000 });
    expect(stored).toHaveLength(50);
    expect(stored.reduce((a, r) => a + r.cost_nanousd, 0n)).toBe(costs.reduce((a, b) => a + b, 0n));
    await up.replay(); // replaying again stores nothing twice
    expect(await second.count({ workspaceId: "default" })).toBe(50);
    up.close();
    await second.close();
  });

  it("keeps memory bounded: past maxPending, calls go to the spool in batches (a file each, not one per call)", async () => {
    const store = await DuckDbStore.open(join(dir, "bounded"));
    const spoolDir = join(dir, "bounded-spool");
    const spool = new Spool(spoolDir);
    const rec = new Recorder(new GroupCommitWriter(store), new PricingEngine(), spool, {
      maxPending: 5,
      batchSize: 10,
      batchMs: 60_000,
      replayMs: 60_000,
    });
    for (let i = 0; i < 40; i++) rec.record(call(i), "default");
    expect(spool.depth).toBe(30); // 35 past the bound: three batches of 10 spilled, 5 still gathering
    expect(rec.pending).toBe(10); // 5 for the store, 5 for the spool's next batch
    expect(readdirSync(spoolDir).filter((f) => f.endsWith(".ndjson"))).toHaveLength(3);
    await rec.flush(); // the store is up: everything ends up stored
    expect(await store.count({ workspaceId: "default" })).toBe(40);
    expect(spool.depth).toBe(0);
    rec.close();
    await store.close();
  });

  it("when the spool refuses too (disk full), calls wait in memory and reach the store when it has room", async () => {
    const store = await DuckDbStore.open(join(dir, "full-disk"));
    const errors: string[] = [];
    const rec = new Recorder(
      new GroupCommitWriter(store),
      new PricingEngine(),
      new FullDisk(join(dir, "full")),
      {
        maxPending: 20,
        batchSize: 10,
        batchMs: 60_000,
        replayMs: 60_000,
        onError: (e) => errors.push((e as Error).message),
      },
    );
    for (let i = 0; i < 40; i++) rec.record(call(i), "default");
    expect(rec.pending).toBe(40); // 20 on their way to the store, 20 waiting in memory: none dropped
    await rec.flush();
    expect(await store.count({ workspaceId: "default" })).toBe(40);
    expect(rec.pending).toBe(0);
    expect(errors).toEqual([
      expect.stringMatching(/^spool write failed, call records wait in memory .*ENOSPC/),
    ]);
    rec.close();
    await store.close();
  });

  it("a nearly full disk takes the calls waiting in memory a batch at a time, as many as it has room for", async () => {
    const store = await DuckDbStore.open(join(dir, "nearly-full"));
    // The real store, refusing every write: calls have only the spool to go to.
    const down = new Proxy(store, {
      get(t, p) {
        const v = Reflect.get(t, p);
        if (p === "append") return async () => Promise.reject(new Error("store unreachable"));
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
    const disk = new NearlyFullDisk(join(dir, "nearly-full-spool"));
    const opts = { maxPending: 20, batchSize: 5, batchMs: 60_000, replayMs: 60_000, onError: () => {} };
    const rec = new Recorder(new GroupCommitWriter(down), new PricingEngine(), disk, opts);
    for (let i = 0; i < 20; i++) rec.record(call(i), "default");
    await rec.flush({ deadlineMs: 1_000 }); // the disk is full: all 20 wait in memory
    expect(disk.depth).toBe(0);
    expect(rec.pending).toBe(20);
    disk.room = 12; // room is made for 12
    await rec.flush({ deadlineMs: 1_000 });
    expect(disk.depth).toBe(10); // two files of 5; one of all 20 would not fit
    expect(rec.pending).toBe(10);
    disk.room = 100;
    await rec.flush({ deadlineMs: 1_000 });
    expect(disk.depth).toBe(20);
    expect(rec.pending).toBe(0);
    rec.close();
    await store.close();
  });

  it("an outage is said once (not once a batch), and so is the store's return; a refusing disk shows", async () => {
    const store = await DuckDbStore.open(join(dir, "outage"));
    let down = true;
    // The real store, refusing while `down` (a store that is away for a while, then back).
    const flaky = new Proxy(store, {
      get(t, p) {
        const v = Reflect.get(t, p);
        if (p === "append" && down) return async () => Promise.reject(new Error("store unreachable"));
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
    const errors: string[] = [];
    const spool = new Spool(join(dir, "outage-spool"));
    const opts = {
      batchSize: 5,
      batchMs: 60_000,
      replayMs: 60_000,
      onError: (e: unknown) => errors.push(String(e)),
    };
    const rec = new Recorder(new GroupCommitWriter(flaky), new PricingEngine(), spool, opts);
    for (let i = 0; i < 30; i++) rec.record(call(i), "default"); // six batches, each refused
    await rec.flush();
    expect(spool.depth).toBe(30);
    down = false;
    for (let i = 0; i < 10; i++) rec.record(call(i), "default");
    await rec.flush();
    expect(await store.count({ workspaceId: "default" })).toBe(40);
    expect(errors).toEqual([
      expect.stringMatching(
        /store failed, call records go to the spool until it takes them again: .*unreachable/,
      ),
      expect.stringMatching(/the store takes call records again/),
    ]);
    expect(rec.spoolFailing).toBe(false);
    rec.close();

    const full = new Recorder(
      new GroupCommitWriter(flaky),
      new PricingEngine(),
      new FullDisk(join(dir, "o2")),
      opts,
    );
    down = true;
    full.record(call(0), "default");
    await full.flush({ deadlineMs: 1_000 });
    expect(full.spoolFailing).toBe(true); // /metrics: tollgate_spool_failing 1
    expect(full.spoolRefusal).toBe("ENOSPC: no space left on device, write"); // /readyz: spool
    down = false;
    await full.flush();
    expect(full.pending).toBe(0);
    expect(full.spoolFailing).toBe(false); // the store took what waited: nothing waits on the disk
    expect(full.spoolRefusal).toBeNull();
    full.close();
    await store.close();
  });

  it("calls the refusing spool left in memory are still said to wait there while they are retried against the store", async () => {
    const store = await DuckDbStore.open(join(dir, "retried"));
    // The real store, each commit refused as a full disk would until `refuse` is false, and answered only
    // when `answer` is called.
    let refuse = true;
    let answer: () => void = () => {};
    const held = new Proxy(store, {
      get(t, p) {
        const v = Reflect.get(t, p);
        if (p !== "append") return typeof v === "function" ? v.bind(t) : v;
        return (records: CallRecord[]) =>
          new Promise<void>((resolve) => {
            answer = resolve;
          }).then(() =>
            refuse ? Promise.reject(new Error("No space left on device")) : store.append(records),
          );
      },
    });
    const rec = new Recorder(
      new GroupCommitWriter(held),
      new PricingEngine(),
      new FullDisk(join(dir, "o3")),
      {
        batchMs: 60_000,
        replayMs: 60_000,
      },
    );
    rec.record(call(0), "default");
    const first = rec.flush();
    answer(); // refused: the spool refuses it too, so it waits in memory
    await first;
    expect(rec.spoolRefusal).toBe("ENOSPC: no space left on device, write");
    const retried = rec.flush(); // handed to the store again: in memory still, until it is taken
    expect(rec.pending).toBe(1);
    expect(rec.spoolFailing).toBe(true);
    expect(rec.spoolRefusal).toBe("ENOSPC: no space left on device, write");
    refuse = false;
    answer();
    await retried;
    expect(rec.pending).toBe(0);
    expect(rec.spoolRefusal).toBeNull();
    rec.close();
    await store.close();
  });

  it("shutdown does not wait on a store that hangs: what it holds is spooled, then stored by the next start", async () => {
    const dataDir = join(dir, "hang");
    const spoolDir = join(dir, "hang-spool");
    const store = await DuckDbStore.open(dataDir);
    const hung = new Proxy(store, {
      get: (t, k) => (k === "append" ? () => new Promise(() => {}) : Reflect.get(t, k, t)),
    });
    const rec = new Recorder(new GroupCommitWriter(hung), new PricingEngine(), new Spool(spoolDir), {
      replayMs: 60_000,
      onError: () => {},
    });
    const ids = Array.from({ length: 10 }, (_, i) => rec.record(call(i), "default")!.record.event_id);
    const started = Date.now();
    await rec.flush({ deadlineMs: 200 });
    expect(Date.now() - started).toBeLessThan(2_000);
    rec.close();
    expect(new Spool(spoolDir).depth).toBe(10);

    const next = new Recorder(new GroupCommitWriter(store), new PricingEngine(), new Spool(spoolDir), {
      replayMs: 60_000,
    });
    await next.flush();
    expect((await store.query({ workspaceId: "default" })).map((r) => r.event_id).sort()).toEqual(ids.sort());
    next.close();
    await store.close();
  });

  it("shutdown spools the calls recorded while it waited on a hung store, and any recorded after it closed", async () => {
    const spoolDir = join(dir, "hang-late-spool");
    const store = await DuckDbStore.open(join(dir, "hang-late"));
    const hung = new Proxy(store, {
      get: (t, k) => (k === "append" ? () => new Promise(() => {}) : Reflect.get(t, k, t)),
    });
    const errors: string[] = [];
    const rec = new Recorder(new GroupCommitWriter(hung), new PricingEngine(), new Spool(spoolDir), {
      replayMs: 60_000,
      batchMs: 60_000, // no batch timer turn before the deadline
      onError: (e) => errors.push((e as Error).message),
    });
    rec.record(call(1), "default");
    const flushed = rec.flush({ deadlineMs: 200 });
    rec.record(call(2), "default"); // a call that ended while shutdown waited: in no batch sent yet
    await flushed;
    rec.close();
    rec.record(call(3), "default"); // one that ended later still (it outlived the gateway's wait for it)
    expect(new Spool(spoolDir).depth).toBe(3);
    expect(errors.filter((m) => m.includes("LOST"))).toEqual([]);
    await store.close();
  });

  it("drops attribution that fails validation instead of losing the call", async () => {
    const store = await DuckDbStore.open(join(dir, "attr"));
    const rec = new Recorder(
      new GroupCommitWriter(store),
      new PricingEngine(),
      new Spool(join(dir, "attr-spool")),
    );
    const { record, attributionError } = rec.record(
      { ...call(1), customer_id: "x".repeat(5000) },
      "default",
    )!;
    expect(attributionError?.[0]?.field).toBe("customer_id");
    expect(record.customer_id).toBeNull();
    expect(record.metadata.tollgate_attribution_error).toMatch(/customer_id/);
    await rec.flush();
    expect(await store.count({ workspaceId: "default" })).toBe(1);
    rec.close();
    await store.close();
  });
});

describe("spool files", () => {
  it("sets an unreadable file aside and replays the ones after it", async () => {
    const spoolDir = join(dir, "torn");
    const spool = new Spool(spoolDir);
    const store = await DuckDbStore.open(join(dir, "torn-data"));
    const rec = new Recorder(new GroupCommitWriter(store), new PricingEngine(), spool, { replayMs: 60_000 });
    // a torn file from an older crash, then a good one
    writeFileSync(
      join(spoolDir, "1-1-0.ndjson"),
      '{"event_id":"0190a0b0-0000-7000-8000-0000000000aa","ts_st\n',
    );
    const good = rec.record(call(7), "default")!.record;
    await store.close(); // nothing stored: force the good record through the spool
    const spooled = new Spool(spoolDir);
    spooled.spill([good]);
    const store2 = await DuckDbStore.open(join(dir, "torn-data"));
    const rec2 = new Recorder(new GroupCommitWriter(store2), new PricingEngine(), spooled, {
      replayMs: 60_000,
    });
    await rec2.flush();
    expect(readdirSync(spoolDir).filter((f) => f.endsWith(".bad"))).toEqual(["1-1-0.ndjson.bad"]);
    expect((await store2.query({ workspaceId: "default" })).map((r) => r.event_id)).toContain(good.event_id);
    rec.close();
    rec2.close();
    await store2.close();
  });

  /** A record as a spool line (bigint money as a digit string). */
  const json = (r: CallRecord) => JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? String(v) : v));
  const drainAll = async (spool: Spool) => {
    const got: CallRecord[] = [];
    await spool.drain(async (records) => {
      got.push(...records);
    });
    return got;
  };

  it("reads money back as bigint from the record's own fields only: metadata named like money stays text", async () => {
    const spool = new Spool(join(dir, "meta-money"));
    const odd = built(1, { metadata: { cost_nanousd: "n/a", input_cost_nanousd: "12" } });
    const plain = built(2);
    spool.spill([odd, plain]);
    const got = await drainAll(spool);
    expect(got).toEqual([odd, plain]);
    expect(typeof got[0]!.cost_nanousd).toBe("bigint");
    expect(spool.depth).toBe(0);
  });

  it("sets aside only the lines it cannot read; the rest of their file is stored", async () => {
    const spoolDir = join(dir, "bad-line");
    mkdirSync(spoolDir, { recursive: true });
    const [a, b] = [built(3), built(4)];
    writeFileSync(join(spoolDir, "1-1-0.ndjson"), `${json(a)}\n{"event_id": oops\n${json(b)}\n`);
    const logged: string[] = [];
    const reopened = new Spool(spoolDir, (m) => logged.push(m));
    expect(reopened.depth).toBe(3);
    expect(await drainAll(reopened)).toEqual([]); // this drain sets the bad line aside…
    expect(await drainAll(reopened)).toEqual([a, b]); // …the next stores the rest
    expect(reopened.depth).toBe(0);
    expect(readdirSync(spoolDir)).toEqual(["1-1-0.ndjson.bad"]);
    expect(readFileSync(join(spoolDir, "1-1-0.ndjson.bad"), "utf8")).toBe('{"event_id": oops\n');
    // Said, once: those calls are stored by nobody else. The way back it names is one.
    expect(logged).toEqual([
      `1 spooled call records are damaged and NOT stored: set aside in ${join(spoolDir, "1-1-0.ndjson.bad")}. ` +
        `A line repaired and put back in a file of ${spoolDir} named *.ndjson is stored at the next start`,
    ]);
    const repaired = built(18);
    writeFileSync(join(spoolDir, "repaired.ndjson"), `${json(repaired)}\n`);
    expect(await drainAll(new Spool(spoolDir))).toEqual([repaired]);
  });

  it("sets aside a damaged line the store refuses (it still parses), then stores the rest and the files after it", async () => {
    const spoolDir = join(dir, "damaged");
    mkdirSync(spoolDir, { recursive: true });
    const [a, b, c] = [built(8), built(9), built(10)];
    const damaged = json(a).replace(a.event_id, `${a.event_id.slice(0, 35)}#`); // one byte changed: no UUID
    writeFileSync(join(spoolDir, "1-1-0.ndjson"), `${damaged}\n${json(b)}\n`);
    writeFileSync(join(spoolDir, "2-1-0.ndjson"), `${json(c)}\n`);
    const store = await DuckDbStore.open(join(dir, "damaged-data"));
    const writer = new GroupCommitWriter(store);
    const logged: string[] = [];
    const spool = new Spool(spoolDir, (m) => logged.push(m));
    for (let i = 0; i < 2; i++) await spool.drain((records) => writer.write(records));
    expect(logged).toEqual([expect.stringMatching(/^1 spooled call records are damaged and NOT stored: /)]);
    const stored = (await store.query({ workspaceId: "default" })).map((r) => r.event_id);
    expect(stored.sort()).toEqual([b.event_id, c.event_id].sort());
    expect(spool.depth).toBe(0);
    expect(readdirSync(spoolDir)).toEqual(["1-1-0.ndjson.bad"]);
    expect(readFileSync(join(spoolDir, "1-1-0.ndjson.bad"), "utf8")).toBe(`${damaged}\n`);
    await store.close();
  });

  it("sets aside a line whose key a damaged byte renamed (a field the store requires missing), then stores the rest", async () => {
    const spoolDir = join(dir, "damaged-key");
    mkdirSync(spoolDir, { recursive: true });
    const [a, b, c, d, e] = [built(12), built(13), built(14), built(15), built(17)];
    // One byte changed in a key: the line parses, the field is unknown, and a column the store requires is missing.
    const noStatus = json(a).replace('"status"', '"stbtus"');
    const noCost = json(b).replace('"cost_output_nanousd"', '"cost_output_nanouse"');
    const noTokens = json(d).replace('"output_tokens"', '"output_tokenr"'); // not read back as 0 tokens
    writeFileSync(join(spoolDir, "1-1-0.ndjson"), `${noStatus}\n${json(c)}\n${noCost}\n${noTokens}\n`);
    writeFileSync(join(spoolDir, "2-1-0.ndjson"), `${json(e)}\n`);
    const store = await DuckDbStore.open(join(dir, "damaged-key-data"));
    const writer = new GroupCommitWriter(store);
    const spool = new Spool(spoolDir);
    for (let i = 0; i < 2; i++) await spool.drain((records) => writer.write(records));
    const stored = (await store.query({ workspaceId: "default" })).map((r) => r.event_id);
    expect(stored.sort()).toEqual([c.event_id, e.event_id].sort());
    expect(spool.depth).toBe(0);
    expect(readdirSync(spoolDir)).toEqual(["1-1-0.ndjson.bad"]);
    expect(readFileSync(join(spoolDir, "1-1-0.ndjson.bad"), "utf8")).toBe(
      `${noStatus}\n${noCost}\n${noTokens}\n`,
    );
    // Nor does such a record, replayed alongside live calls, fail the commit they share.
    const live = writer.write([built(16)]);
    const damaged = writer.write([JSON.parse(noStatus)]);
    await expect(damaged).rejects.toThrow();
    expect(await live).toEqual([true]);
    await store.close();
  });

  it("a drain takes up no file while the spool is held (a budget's seed reads its files over several turns)", async () => {
    const spoolDir = join(dir, "held");
    const spool = new Spool(spoolDir);
    const a = built(12);
    spool.spill([a]);
    // A damaged file, set aside and rewritten under another name by a drain: not while held.
    const files = spool.files();
    const line = readFileSync(join(spoolDir, files[0]!), "utf8");
    writeFileSync(join(spoolDir, "1-1-0.ndjson"), `${line}{not json\n`);
    files.unshift("1-1-0.ndjson");
    const stored: CallRecord[] = [];
    let release = () => {};
    const held = spool.hold(() => new Promise<void>((r) => (release = r)));
    const drained = spool.drain(async (records) => void stored.push(...records));
    for (let turn = 0; turn < 5; turn++) await new Promise((r) => setImmediate(r));
    expect(spool.files()).toEqual(files);
    expect(stored).toEqual([]);
    release();
    await held;
    await drained;
    expect(stored.map((r) => r.event_id)).toEqual([a.event_id]);
    expect(spool.files()).toHaveLength(1); // the damaged file's good line, stored by the next drain
  });

  it("a store failure with only sound records keeps the file for the next drain", async () => {
    const spool = new Spool(join(dir, "store-down"));
    const a = built(11);
    spool.spill([a]);
    await expect(spool.drain(() => Promise.reject(new Error("store down")))).rejects.toThrow("store down");
    expect(spool.depth).toBe(1);
    expect(await drainAll(spool)).toEqual([a]);
  });

  it("a store failure keeps every record the gateway builds in its file: a poll's (no model), a tool's, a long model name's", async () => {
    const spool = new Spool(join(dir, "store-down-kinds"));
    const records = [
      built(1, { kind: "other", model: undefined, api: undefined }), // a background response polled: model ""
      built(2, { kind: "tool", provider: undefined, model: undefined }), // provider "" too
      built(3, { model: `ft:${"m".repeat(250)}` }), // unpriced: its price_ref is past 256 characters
    ];
    spool.spill(records);
    await expect(spool.drain(() => Promise.reject(new Error("store down")))).rejects.toThrow("store down");
    expect(readdirSync(join(dir, "store-down-kinds")).filter((f) => f.endsWith(".bad"))).toEqual([]);
    expect(spool.depth).toBe(3);
    const store = await DuckDbStore.open(join(dir, "store-down-kinds-data"));
    const writer = new GroupCommitWriter(store);
    await spool.drain((r) => writer.write(r));
    expect(spool.depth).toBe(0);
    expect(await store.count({ workspaceId: "default" })).toBe(3);
    await store.close();
  });

  it("salvages the whole lines of a spill a crash cut short (its .tmp), dropping only the torn last one", async () => {
    const spoolDir = join(dir, "cut-short");
    mkdirSync(spoolDir, { recursive: true });
    const [a, b] = [built(5), built(6)];
    writeFileSync(
      join(spoolDir, "1-1-0.ndjson.tmp"),
      `${json(a)}\n${json(b)}\n${json(built(7)).slice(0, 40)}`,
    );
    const spool = new Spool(spoolDir);
    expect(spool.depth).toBe(2);
    expect(readdirSync(spoolDir).some((f) => f.endsWith(".tmp"))).toBe(false);
    expect(await drainAll(spool)).toEqual([a, b]);
  });

  it("never writes over a spool file of the same name (a restart under the same pid, a clock stepped back)", async () => {
    const spoolDir = join(dir, "same-name");
    mkdirSync(spoolDir, { recursive: true });
    const earlier = built(8);
    // What an earlier process of this pid (pid 1 in a container) left in the same millisecond, its count at 0.
    const now = vi.spyOn(Date, "now").mockReturnValue(1_700_000_000_000);
    try {
      writeFileSync(join(spoolDir, `1700000000000-${process.pid}-0.ndjson`), `${json(earlier)}\n`);
      writeFileSync(join(spoolDir, `1700000000000-${process.pid}-1.ndjson.tmp`), "");
      const spool = new Spool(spoolDir);
      const later = built(9);
      spool.spill([later]);
      expect(spool.depth).toBe(2);
      expect(await drainAll(spool)).toEqual([earlier, later]);
    } finally {
      now.mockRestore();
    }
  });

  it("drains the files of one millisecond in the order they were spilled, the 11th after the 10th", async () => {
    const spoolDir = join(dir, "one-millisecond");
    // A shutdown spilling many batches at once on a fast disk: all in the same millisecond.
    const now = vi.spyOn(Date, "now").mockReturnValue(1_700_000_000_000);
    try {
      const spool = new Spool(spoolDir);
      const spilled = Array.from({ length: 12 }, (_, i) => built(30 + i));
      for (const r of spilled) spool.spill([r]);
      expect(await drainAll(spool)).toEqual(spilled);
    } finally {
      now.mockRestore();
    }
  });
});

describe("group commit", () => {
  it("a batch the store refuses fails alone, not the batches that shared its commit", async () => {
    const store = await DuckDbStore.open(join(dir, "group-data"));
    const writer = new GroupCommitWriter(store);
    const first = writer.write([built(1)]); // in flight: the next two wait, then share one commit
    const damaged = writer.write([{ ...built(2), event_id: "not-a-uuid" }]);
    const sound = writer.write([built(3), built(4)]);
    expect(await first).toEqual([true]);
    await expect(damaged).rejects.toThrow();
    expect(await sound).toEqual([true, true]);
    expect(await store.count({ workspaceId: "default" })).toBe(3);
    await store.close();
  });

  it("a store that is down fails a shared commit once, not once per batch", async () => {
    const store = await DuckDbStore.open(join(dir, "group-down"));
    await store.close(); // every append now fails
    let appends = 0;
    const counted = new Proxy(store, {
      get(t, p) {
        const v = Reflect.get(t, p);
        if (p === "append") appends++;
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
    const writer = new GroupCommitWriter(counted);
    const writes = [writer.write([built(1)]), writer.write([built(2)]), writer.write([built(3)])];
    for (const w of writes) await expect(w).rejects.toThrow();
    expect(appends).toBe(2); // the first batch, then the other two together
  });
});

describe("spool files from an earlier version", () => {
  it("a record spooled by an earlier version (without the counts kept since) is stored with them at 0", async () => {
    const spoolDir = join(dir, "old-spool");
    const spool = new Spool(spoolDir);
    const record = built(1);
    spool.spill([record]);
    const [file] = readdirSync(spoolDir);
    const old = JSON.parse(readFileSync(join(spoolDir, file!), "utf8"));
    for (const k of [
      "cache_audio_read_tokens",
      "output_image_tokens",
      "input_audio_ms",
      "web_search_requests",
      "parent_event_id",
    ])
      delete old[k];
    writeFileSync(join(spoolDir, file!), `${JSON.stringify(old)}\n`);
    const store = await DuckDbStore.open(join(dir, "old-spool-store"));
    await new Spool(spoolDir).drain((records) => store.append(records));
    expect(await store.findEvent("default", record.event_id)).toMatchObject({
      cache_audio_read_tokens: 0,
      output_image_tokens: 0,
      input_audio_ms: 0,
      web_search_requests: 0,
      parent_event_id: null,
      cost_nanousd: record.cost_nanousd,
    });
    await store.close();
  });
});
