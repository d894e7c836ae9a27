// A spool file with damaged lines on a disk too full to rewrite its good ones: the set-aside fails, and is tried
// again at the next drain. Each damaged line must reach `<file>.bad` once, not once per try. The disk's
// refusal is injected into node:fs's renameSync (how a spool file is put in place): a full disk cannot be
// made on demand here.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCallRecord, type CallRecord, PricingEngine, uuidv7 } from "@tollgate/core";
import { afterAll, describe, expect, it, vi } from "vitest";

const disk = vi.hoisted(() => ({ full: false }));

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const renameSync: typeof fs.renameSync = (from, to) => {
    if (disk.full)
      throw Object.assign(new Error("ENOSPC: no space left on device, rename"), { code: "ENOSPC" });
    fs.renameSync(from, to);
  };
  return { ...fs, renameSync, default: { ...fs, renameSync } };
});

const { Spool } = await import("../src/gateway/spool.js");

const dir = mkdtempSync(join(tmpdir(), "tollgate-spool-faults-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const engine = new PricingEngine();
function built(i: number): CallRecord {
  const b = buildCallRecord(
    {
      event_id: uuidv7(),
      ts_start: Date.now() - 1000,
      provider: "openai",
      api: "openai.chat",
      model: "gpt-4o-mini",
      input_uncached_tokens: 100 + i,
      output_tokens: 10,
    },
    { workspaceId: "default", engine },
  );
  if (!b.ok) throw new Error(JSON.stringify(b.errors));
  return b.record;
}
const json = (r: CallRecord) => JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? String(v) : v));

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
