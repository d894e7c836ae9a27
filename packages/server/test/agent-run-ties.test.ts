// The agent-run rollup names the costliest run of each agent type. When runs tie on cost (identical
// runs: same calls, same tokens), every store must name the same one: the smallest run id.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "chdb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { openClickHouse } from "../src/store/clickhouse/open.js";
import { DuckDbStore } from "../src/store/duckdb/store.js";
import type { Store } from "../src/store/types.js";
import { ChdbExec } from "./chdb-exec.js";
import { buildRecord } from "./conformance-data.js";

const dir = mkdtempSync(join(tmpdir(), "tg-run-ties-"));
let chdb: Session;
const stores: [string, Store][] = [];
const t = Date.now() - 60_000;

beforeAll(async () => {
  chdb = new Session(join(dir, "chdb"));
  stores.push(
    ["duckdb", await DuckDbStore.open(join(dir, "duck"))],
    ["chdb-modern", await openClickHouse({ url: "http://chdb/tg_run_ties" }, () => new ChdbExec(chdb))],
  );
  // 40 runs of one call each, all the same cost, stored out of run-id order.
  const records = Array.from({ length: 40 }, (_, i) =>
    buildRecord({
      event_id: `01900000-0000-7000-8000-${String(i + 1).padStart(12, "0")}`,
      ts_start: t + i,
      provider: "openai",
      model: "gpt-4o",
      input_uncached_tokens: 10,
      output_tokens: 5,
      agent_type: "support",
      agent_run_id: `run-${String((i * 7 + 3) % 40).padStart(2, "0")}`,
    }),
  );
  for (const [, store] of stores) await store.append(records);
}, 60_000);
afterAll(async () => {
  for (const [, store] of stores) await store.close();
  chdb?.close();
  rmSync(dir, { recursive: true, force: true });
});

it("runs tied on cost: every store names the smallest run id as the costliest", async () => {
  for (const [name, store] of stores) {
    const [row] = await store.agentRuns({ workspaceId: "default", from: t, to: t + 1_000 });
    expect(row, name).toMatchObject({ agent_type: "support", runs: 40, max_run_id: "run-00" });
  }
});
