// A spool file with damaged lines on a disk too full to rewrite its good ones: the set-aside fails, and is tried
// again at the next drain. Each damaged line must reach `<file>.bad` once, not once per try. The disk's
// refusal is injected into node:fs's renameSync (how a spool file is put in place): a full disk cannot be
// made on demand here. And the spool's depth after a drain cut short (by the store, or a set-aside whose
// `.bad` the disk refused): it must count the calls still on disk.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CallRecord, PricingEngine, uuidv7 } from "@tollgate/core";
import { afterAll, describe, expect, it, vi } from "vitest";
import type { GroupCommitWriter } from "../src/ingest/writer.js";
import { buildRecord } from "./conformance-data.js";

const disk = vi.hoisted(() => ({ full: false, badRefused: false }));

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const renameSync: typeof fs.renameSync = (from, to) => {
    if (disk.full)
      throw Object.assign(new Error("ENOSPC: no space left on device, rename"), { code: "ENOSPC" });
    fs.renameSync(from, to);
  };
  // Room for a spool file's good lines, none left for its damaged ones in `.bad`.
  const appendFileSync: typeof fs.appendFileSync = (path, data, options) => {
    if (disk.badRefused && String(path).endsWith(".bad"))
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    fs.appendFileSync(path, data, options);
  };
  return {
    ...fs,
    renameSync,
    appendFileSync,
    default: { ...fs, renameSync, appendFileSync },
  };
});

const { Spool } = await import("../src/gateway/spool.js");
const { Recorder } = await import("../src/gateway/recorder.js");

const dir = mkdtempSync(join(tmpdir(), "tollgate-spool-faults-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const built = (i: number): CallRecord =>
  buildRecord({
    event_id: uuidv7(),
    ts_start: Date.now() - 1000,
    provider: "openai",
    api: "openai.chat",
    model: "gpt-4o-mini",
    input_uncached_tokens: 100 + i,
    output_tokens: 10,
  });
const json = (r: CallRecord) => JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? String(v) : v));
/** Call records in the spool's files, read as the spool reads them. */
const onDisk = (spool: InstanceType<typeof Spool>) => [...spool.records()].flat().length;

describe("setting damaged spooled lines aside on a full disk", () => {
  it("adds each damaged line to <file>.bad once, however often the set-aside is tried again", async () => {
    const spoolDir = join(dir, "full");
    mkdirSync(spoolDir, { recursive: true });
    const good = built(1);
    writeFileSync(join(spoolDir, "1-1-0.ndjson"), `${json(good)}\n{"damaged\n`);
    const spool = new Spool(spoolDir);
    const stored: CallRecord[] = [];
    const store = async (records: CallRecord[]) => {
      stored.push(...records);
    };
    disk.full = true;
    for (let i = 0; i < 3; i++) await expect(spool.drain(store)).rejects.toThrow("ENOSPC");
    disk.full = false;
    await spool.drain(store); // sets the damaged line aside, its good one in a file of its own
    await spool.drain(store);
    expect(stored).toEqual([good]);
    expect(readFileSync(join(spoolDir, "1-1-0.ndjson.bad"), "utf8")).toBe('{"damaged\n');
    expect(readdirSync(spoolDir).filter((f) => f.endsWith(".ndjson"))).toEqual([]);
    expect(spool.depth).toBe(0);
  });

  it("a file put in the spool while it runs is drained without its depth going below 0", async () => {
    const spoolDir = join(dir, "put-back");
    const spool = new Spool(spoolDir);
    spool.spill([built(2)]);
    writeFileSync(join(spoolDir, "2-1-0.ndjson"), `${json(built(3))}\n${json(built(4))}\n`);
    await spool.drain(async () => {});
    expect(spool.depth).toBe(0);
  });
});

// The recorder replays the spool only while its depth is above 0: calls left on disk at a depth of 0 wait,
// unstored, for the next spill or start.
describe("the spool's depth after a drain cut short", () => {
  it("counts the calls still spooled when the store stopped the drain after a file put back while it runs", async () => {
    const spoolDir = join(dir, "put-back-then-down");
    const spool = new Spool(spoolDir);
    spool.spill([built(5)]);
    writeFileSync(join(spoolDir, "3-1-0.ndjson"), `${json(built(6))}\n${json(built(7))}\n`);
    let batches = 0;
    const downAfterOne = async () => {
      if (batches++) throw new Error("store down");
    };
    await expect(spool.drain(downAfterOne)).rejects.toThrow("store down");
    expect(onDisk(spool)).toBe(1);
    expect(spool.depth).toBe(1);
  });

  it("the good lines of a set-aside refused once are replayed, not left on disk at a depth of 0", async () => {
    const spoolDir = join(dir, "set-aside-refused");
    mkdirSync(spoolDir, { recursive: true });
    const good = built(8);
    writeFileSync(join(spoolDir, "4-1-0.ndjson"), `${json(good)}\n{"damaged\n`);
    const spool = new Spool(spoolDir);
    disk.badRefused = true; // its good line is written again, its damaged one refused: tried again later
    await expect(spool.drain(async () => {})).rejects.toThrow("ENOSPC");
    disk.badRefused = false;
    const stored: CallRecord[] = [];
    const writer = { write: async (records: CallRecord[]) => stored.push(...records) };
    const recorder = new Recorder(writer as unknown as GroupCommitWriter, new PricingEngine(), spool);
    try {
      await recorder.replay();
      await recorder.replay();
      expect(onDisk(spool)).toBe(0);
      expect(spool.depth).toBe(0);
      expect(stored.map((r) => r.event_id)).toContain(good.event_id);
    } finally {
      recorder.close();
    }
  });
});

describe("the spool's depth with a file taken out by hand", () => {
  it("drops a file taken out of the spool while it runs (moved aside by hand) from its depth at the next drain", async () => {
    const spoolDir = join(dir, "taken-out");
    const spool = new Spool(spoolDir);
    spool.spill([built(9)]);
    spool.spill([built(10)]);
    rmSync(join(spoolDir, spool.files()[0]!)); // an operator moved it away to look at it
    await spool.drain(async () => {});
    expect(onDisk(spool)).toBe(0);
    // Counted still, it kept the depth (readyz's spool_depth, the metric) above 0 with nothing on disk.
    expect(spool.depth).toBe(0);
  });
});
