// Generated calls for the tests that compare stores (store.conformance, clickhouse-on-cluster):
// demo traffic (generateDemo) through buildCallRecord with the default price table, all real data, and every
// 13th call without a deployment.
import { buildCallRecord, type CallRecord, PricingEngine } from "@tollgate/core";
import { generateDemo } from "../src/demo/generate.js";

const engine = new PricingEngine(null);

/** One call record from an ingest-shaped object; throws on a validation error. */
export function buildRecord(input: Record<string, unknown>): CallRecord {
  const b = buildCallRecord(input, { workspaceId: (input.workspace_id as string) ?? "default", engine });
  if (!b.ok) throw new Error(JSON.stringify(b.errors));
  return b.record;
}

/** Seeded demo calls ending at `now` (the same options give the same records). */
export function demoRecords(opts: {
  days: number;
  callsPerDay: number;
  seed: number;
  now: number;
}): CallRecord[] {
  return [...generateDemo(opts)].map((r, i) =>
    buildRecord({ ...r, data_mode: "real", ...(i % 13 === 0 ? { deployment: undefined } : {}) }),
  );
}
