import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CallRecord, uuidv7 } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GroupCommitWriter } from "../src/ingest/writer.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import type { AppendResult } from "../src/store/types.js";
import { buildRecord } from "./conformance-data.js";

const dir = mkdtempSync(join(tmpdir(), "tollgate-writer-refused-"));
let store: DuckDbStore;
beforeAll(async () => {
  store = await DuckDbStore.open(join(dir, "data"));
});
afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const record = (): CallRecord =>
  buildRecord({
    event_id: uuidv7(),
    ts_start: Date.now(),
    provider: "openai",
    api: "openai.chat",
    model: "gpt-4o-mini",
  });

const DISK_FULL = 'IO Error: Could not write file "tollgate.duckdb.wal": No space left on device';

/**
 * The real store's append, each commit held until the test settles it: `take(i)` lets the i-th commit
 * through to the store, `refuse(i)` fails it as a full disk would.
 */
function heldCommits(): {
  take: (i: number) => Promise<void>;
  refuse: (i: number) => void;
  started: () => number;
} {
  const append = store.append.bind(store);
  const held: { go: (ok: boolean) => void; done: Promise<unknown> }[] = [];
  store.append = (records) => {
    let go!: (ok: boolean) => void;
    const decided = new Promise<boolean>((resolve) => {
      go = resolve;
    });
    const done: Promise<AppendResult> = decided.then((ok) =>
      ok ? append(records) : Promise.reject(new Error(DISK_FULL)),
    );
    held.push({ go, done });
    return done;
  };
  return {
    take: async (i) => {
      held[i]!.go(true);
      await held[i]!.done;
    },
    refuse: (i) => held[i]!.go(false),
    started: () => held.length,
  };
}

describe("the writer's `refused` with commits in flight at once", () => {
  it("a commit started before the store's latest refusal and taken after it does not clear it; one started after does", async () => {
    const { append } = store;
    const commits = heldCommits();
    try {
      const writer = new GroupCommitWriter(store, { concurrency: 2 });
      const first = writer.write([record()]);
      const second = writer.write([record()]);
      expect(commits.started()).toBe(2);
      commits.refuse(1); // the later commit meets the full disk
      await expect(second).rejects.toThrow(DISK_FULL);
      expect(writer.refused?.message).toBe(DISK_FULL);
      await commits.take(0); // the earlier one, begun before, is taken: it says nothing of the disk now
      await first;
      expect(writer.refused?.message).toBe(DISK_FULL);

      const third = writer.write([record()]);
      await commits.take(2); // begun after the refusal: the store takes commits again
      await third;
      expect(writer.refused).toBeNull();
    } finally {
      store.append = append;
    }
  });

  it("a refusal of a commit started before one the store took does not say the store refuses", async () => {
    const { append } = store;
    const commits = heldCommits();
    try {
      const writer = new GroupCommitWriter(store, { concurrency: 2 });
      const first = writer.write([record()]);
      const second = writer.write([record()]);
      await commits.take(1);
      await second;
      commits.refuse(0);
      await expect(first).rejects.toThrow(DISK_FULL);
      expect(writer.refused).toBeNull();
    } finally {
      store.append = append;
    }
  });
});
