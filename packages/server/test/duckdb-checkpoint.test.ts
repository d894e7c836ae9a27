// Paced checkpoints of the embedded store: a slowly growing WAL is checkpointed once it is big enough (so the
// rows DuckDB holds in memory until then stay bounded), a fast-growing one is left to DuckDB's threshold,
// and nothing stored is lost or doubled on the way.
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { checkpointDue, checkpointWalBytesFrom } from "../src/store/duckdb/checkpoint-pacer.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import { demoRecords } from "./conformance-data.js";

const MB = 1024 * 1024;

describe("checkpointDue", () => {
  const opts = { minWalBytes: 32 * MB, bulkBytesPerSec: 16 * MB };
  it.each([
    { wal: 31 * MB, grown: 0, ms: 5000, due: false, why: "below the minimum" },
    { wal: 32 * MB, grown: 0, ms: 5000, due: true, why: "big enough, not growing" },
    { wal: 200 * MB, grown: 79 * MB, ms: 5000, due: true, why: "growing below the bulk rate" },
    { wal: 200 * MB, grown: 80 * MB, ms: 5000, due: false, why: "growing at the bulk rate, left to DuckDB" },
    { wal: 200 * MB, grown: 20 * MB, ms: 1000, due: false, why: "the rate, not the growth, decides" },
  ])("WAL $wal bytes, grown $grown in $ms ms: $due ($why)", ({ wal, grown, ms, due }) => {
    expect(checkpointDue(wal, grown, ms, opts)).toBe(due);
  });

  it("with no minimum, checkpoints any WAL that is not growing fast, and never an empty one", () => {
    const any = { minWalBytes: 0, bulkBytesPerSec: 16 * MB };
    expect(checkpointDue(1, 0, 1000, any)).toBe(true);
    expect(checkpointDue(0, 0, 1000, any)).toBe(false);
  });
});

describe("TOLLGATE_CHECKPOINT_WAL_MB", () => {
  const walBytes = (v?: string) =>
    checkpointWalBytesFrom(v === undefined ? {} : { TOLLGATE_CHECKPOINT_WAL_MB: v });
  it("is 32 MB unless set", () => {
    expect(walBytes()).toBe(32 * MB);
    expect(walBytes("")).toBe(32 * MB);
    expect(walBytes("1")).toBe(MB);
    expect(walBytes("256")).toBe(256 * MB);
  });
  it("refuses what is not a whole number of MB from 1 to 256", () => {
    for (const v of ["8MB", "-1", "1.5", "257"])
      expect(() => walBytes(v), v).toThrow(
        `TOLLGATE_CHECKPOINT_WAL_MB must be a whole number from 0 to 256, got ${JSON.stringify(v)}`,
      );
    expect(() => walBytes("0")).toThrow("TOLLGATE_CHECKPOINT_WAL_MB must be at least 1, got 0");
  });
  it("a bad one fails the store's open before the file is opened", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tg-ckpt-env-"));
    try {
      vi.stubEnv("TOLLGATE_CHECKPOINT_WAL_MB", "0");
      await expect(DuckDbStore.open(dir)).rejects.toThrow("must be at least 1");
      expect(existsSync(join(dir, "tollgate.duckdb"))).toBe(false);
    } finally {
      vi.unstubAllEnvs();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the store's checkpoint pacer", () => {
  const dir = mkdtempSync(join(tmpdir(), "tg-ckpt-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const wal = join(dir, "tollgate.duckdb.wal");
  const walBytes = () => (existsSync(wal) ? statSync(wal).size : 0);
  const now = Date.UTC(2026, 11, 4, 12);
  const records = demoRecords({ days: 1, callsPerDay: 3000, seed: 11, now });

  it("checkpoints a WAL that stopped growing, and not one that grows fast", async () => {
    // A timer that never fires in the test: ticks are driven by hand. Any growth counts as bulk.
    const checkpoints = { everyMs: 3_600_000, minWalBytes: 256 * 1024, bulkBytesPerSec: 1 };
    let store = await DuckDbStore.open(dir, { checkpoints });
    try {
      for (let i = 0; i < records.length; i += 500) await store.append(records.slice(i, i + 500));
      const before = walBytes();
      expect(before).toBeGreaterThan(checkpoints.minWalBytes);
      // First look: the whole WAL is new growth, at a bulk rate.
      expect(await store.checkpoints!.tick()).toBe(false);
      expect(walBytes()).toBe(before);
      // Second look: no growth since, so it is checkpointed and the WAL is emptied.
      expect(await store.checkpoints!.tick()).toBe(true);
      expect(walBytes()).toBeLessThan(before / 10);
      // Nothing new since: nothing to do.
      expect(await store.checkpoints!.tick()).toBe(false);
      expect((await store.append(records.slice(0, 10))).inserted.size).toBe(0);
    } finally {
      await store.close();
    }
    store = await DuckDbStore.open(dir, { checkpoints });
    try {
      const back = await store.query({ workspaceId: "default", limit: 100_000 });
      expect(back.length).toBe(records.length);
      expect(new Set(back.map((r) => r.event_id)).size).toBe(records.length);
    } finally {
      await store.close();
    }
  });
});
