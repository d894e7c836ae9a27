// The DuckDB store's in-memory open-day sums: every spend answer they give must be the raw calls' answer.
// Two stores get the same calls, one keeping the sums and one answering from raw calls only; calls arrive
// before the sums are loaded, after (fed batch by batch), as retried duplicates, late, future-dated, in
// another workspace, and across a day closing.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CallRecord } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import type { EventFilter, SpendDimension } from "../src/store/types.js";
import { buildRecord, demoRecords } from "./conformance-data.js";

const DAY = 86_400_000;
const HOUR = 3_600_000;
// A fixed noon, so "today" and "tomorrow" do not depend on when the test runs.
const midnight = Date.UTC(2026, 10, 20);
const now = midnight + 12 * HOUR;

let dir: string;
let kept: DuckDbStore;
let raw: DuckDbStore;

async function appendBoth(records: CallRecord[]): Promise<void> {
  const [a, b] = await Promise.all([kept.append(records), raw.append(records)]);
  expect(a.inserted.size).toBe(b.inserted.size);
}

let seq = 0;
/** One call of today (or `ts`), with the given attribution. */
function call(fields: Record<string, unknown>): CallRecord {
  seq++;
  return buildRecord({
    event_id: `00000000-0000-4000-8000-${seq.toString(16).padStart(12, "0")}`,
    ts_start: now - 5 * HOUR + seq,
    provider: "openai",
    model: "gpt-4o",
    input_uncached_tokens: 1000 + seq,
    cache_read_tokens: 50,
    output_tokens: 100,
    user_id: "user-0001",
    customer_id: "cust-01",
    deployment: "prod",
    data_mode: "real",
    ...fields,
  });
}

const edgeCalls = () => [
  call({ user_id: undefined }),
  call({ deployment: undefined, customer_id: undefined }),
  call({ deployment: "staging" }),
  call({ model: "no-such-model-7" }),
  call({ kind: "tool", provider: undefined, model: undefined, input_uncached_tokens: undefined }),
  call({ data_mode: "test" }),
  call({ workspace_id: "other" }),
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tg-open-days-"));
  [kept, raw] = await Promise.all([
    DuckDbStore.open(join(dir, "kept"), { closeDaysAtOpen: false }),
    DuckDbStore.open(join(dir, "raw"), { closeDaysAtOpen: false, openDaySums: false }),
  ]);
  // Stored before the sums exist: loaded from the table when today's sums are first made.
  await appendBoth(demoRecords({ days: 3, callsPerDay: 300, seed: 5, now: now - 2 * HOUR }));
  await appendBoth(edgeCalls());
  await Promise.all([kept.closeDays(now), raw.closeDays(now)]);
  expect(kept.openDaySums?.from).toBe(midnight);
  expect(raw.openDaySums).toBeNull();
  // Fed after: new calls, a retried batch, late calls of yesterday (a closed day).
  const later = demoRecords({ days: 1, callsPerDay: 300, seed: 6, now });
  await appendBoth(later);
  await appendBoth(later.slice(0, 50));
  await appendBoth([...edgeCalls(), call({ ts_start: midnight - HOUR }), call({ ts_start: midnight - 1 })]);
});

afterAll(async () => {
  await Promise.all([kept?.close(), raw?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sorted = (rows: { key: string | null }[]) =>
  [...rows].sort((a, b) => (a.key ?? "\u0000").localeCompare(b.key ?? "\u0000"));

const BY: SpendDimension[] = ["user_id", "customer_id", "deployment", "day"];
const filters = (from: number, to?: number): Record<string, EventFilter> => ({
  "one user, prod or unset, real": {
    workspaceId: "default",
    from,
    to,
    deploymentOrUnset: "prod",
    where: { data_mode: "real", user_id: "user-0001" },
  },
  "one customer": { workspaceId: "default", from, to, where: { customer_id: "cust-01" } },
  "one deployment": { workspaceId: "default", from, to, where: { deployment: "staging" } },
  "the whole workspace": { workspaceId: "default", from, to },
  "another workspace": { workspaceId: "other", from, to },
});

/** Whether the sums can answer: they are kept per user and per customer, not per both. */
const answerable = (f: EventFilter, by: SpendDimension) =>
  !((f.where?.customer_id && by === "user_id") || (f.where?.user_id && by === "customer_id"));

/** Both stores answer alike, and the kept store's sums answered (`sums`) or passed (`raw`). */
async function expectSame(f: EventFilter, by: SpendDimension, from: "sums" | "raw") {
  const direct = kept.openDaySums?.spend(f, by) ?? null;
  if (from === "sums") expect(direct, `${by}: the sums should answer`).not.toBeNull();
  else expect(direct, `${by}: the sums should pass`).toBeNull();
  const [a, b] = await Promise.all([kept.spend(f, by), raw.spend(f, by)]);
  expect(b.length).toBeGreaterThan(0);
  expect(sorted(a)).toEqual(sorted(b));
  if (direct) expect(sorted(direct)).toEqual(sorted(b));
}

describe("DuckDB open-day sums answer spend exactly like the raw calls", () => {
  for (const [name, f] of Object.entries(filters(midnight, now + 1)))
    it(`today up to now: ${name}`, async () => {
      for (const by of BY) await expectSame(f, by, answerable(f, by) ? "sums" : "raw");
    });

  it("a window with no end, and one past today, are answered too", async () => {
    for (const f of [...Object.values(filters(midnight)), ...Object.values(filters(midnight, now + 3 * DAY))])
      for (const by of BY) await expectSame(f, by, answerable(f, by) ? "sums" : "raw");
  });

  it("questions the sums cannot answer exactly go to the raw calls", async () => {
    const [f] = Object.values(filters(midnight, now + 1));
    // Ends before today's last call; starts mid-day; starts before the open days; filters by feature.
    await expectSame({ ...f!, to: now - HOUR }, "user_id", "raw");
    await expectSame({ ...f!, from: midnight + HOUR }, "user_id", "raw");
    await expectSame({ ...f!, from: midnight - DAY }, "user_id", "raw");
    await expectSame({ ...f!, where: { feature: "summarize" } }, "user_id", "raw");
    await expectSame(f!, "feature", "raw");
    await expectSame({ ...f!, where: { user_id: "user-0001", customer_id: "cust-01" } }, "day", "raw");
  });

  it("a call stored in the future stops the sums from answering for windows ending before it", async () => {
    await appendBoth([call({ ts_start: now + 2 * HOUR })]);
    const f = filters(midnight, now + 1)["one user, prod or unset, real"]!;
    await expectSame(f, "user_id", "raw");
    await expectSame({ ...f, to: now + 3 * HOUR }, "user_id", "sums");
  });

  it("when the day closes, the sums move on to the new day and keep up with it", async () => {
    const tomorrow = midnight + DAY;
    await Promise.all([kept.closeDays(tomorrow + HOUR), raw.closeDays(tomorrow + HOUR)]);
    expect(kept.openDaySums?.from).toBe(tomorrow);
    await appendBoth([
      call({ ts_start: tomorrow + 10 }),
      call({ ts_start: tomorrow + 20, user_id: "user-0002" }),
      call({ ts_start: now }),
    ]);
    for (const [, f] of Object.entries(filters(tomorrow, tomorrow + HOUR)))
      if (f.workspaceId === "default" && !f.where?.deployment)
        for (const by of BY) await expectSame(f, by, answerable(f, by) ? "sums" : "raw");
    await expectSame(filters(midnight, now + 1)["one customer"]!, "user_id", "raw");
  });

  it("a store opened again loads the open days' sums from its calls", async () => {
    const f = filters(midnight + DAY)["one customer"]!;
    const before = await kept.spend(f, "customer_id");
    await kept.close();
    kept = await DuckDbStore.open(join(dir, "kept"), { closeDaysAtOpen: false });
    await kept.closeDays(midnight + DAY + HOUR);
    expect(kept.openDaySums?.spend(f, "customer_id")).toEqual(before);
  });
});

describe("DuckDB open-day sums past their bound", () => {
  it("drop out (the raw calls answer) and come back when a day with fewer sums opens", async () => {
    const d = mkdtempSync(join(tmpdir(), "tg-open-days-max-"));
    const store = await DuckDbStore.open(d, { closeDaysAtOpen: false, maxOpenDaySums: 20 });
    try {
      await store.closeDays(now);
      const f: EventFilter = { workspaceId: "default", from: midnight };
      // 15 users and 15 customers: 30 sums, over the bound of 20.
      await store.append(
        Array.from({ length: 15 }, (_, i) => call({ user_id: `u-${i}`, customer_id: `c-${i}` })),
      );
      expect(store.openDaySums?.overflowed).toBe(true);
      expect(store.openDaySums?.spend(f, "user_id")).toBeNull();
      const rows = await store.spend(f, "user_id");
      expect(rows).toHaveLength(15);
      expect(rows.reduce((n, r) => n + r.calls, 0)).toBe(15);
      // Closing again the same day does not load them again: they stay dropped until a day closes.
      const dropped = store.openDaySums;
      await store.closeDays(now + HOUR);
      expect(store.openDaySums).toBe(dropped);
      // The next day has one user and one customer: its sums fit again.
      const tomorrow = midnight + DAY;
      await store.append([call({ ts_start: tomorrow + 5 })]);
      await store.closeDays(tomorrow + HOUR);
      expect(store.openDaySums?.overflowed).toBe(false);
      const next = store.openDaySums?.spend({ ...f, from: tomorrow }, "user_id");
      expect(next).toEqual(await store.spend({ ...f, from: tomorrow }, "user_id"));
      expect(next?.[0]?.calls).toBe(1);
    } finally {
      await store.close();
      rmSync(d, { recursive: true, force: true });
    }
  });
});
