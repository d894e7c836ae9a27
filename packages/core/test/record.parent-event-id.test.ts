// parent_event_id: the call a record was made within. A record naming itself (whatever the case of either
// id) is no call made within another: it would count as spend but never as an LLM call or retry of its run.
import { describe, expect, it } from "vitest";
import { PricingEngine } from "../src/pricing/index.js";
import { buildCallRecord } from "../src/record/index.js";

const ctx = { workspaceId: "ws", engine: new PricingEngine() };
const ID = "0190f5e2-7c3a-7b1e-8f00-00000000000a";
const llm = {
  event_id: ID,
  ts_start: Date.UTC(2025, 5, 1),
  provider: "openai",
  model: "gpt-4o-mini",
  input_uncached_tokens: 10,
  output_tokens: 5,
  agent_run_id: "run-self",
};

describe("parent_event_id", () => {
  it("a record naming itself as its parent is refused (fast path, zod path and any case)", () => {
    for (const input of [
      { ...llm, parent_event_id: ID },
      { ...llm, parent_event_id: ID.toUpperCase() },
      { ...llm, event_id: ID.toUpperCase(), parent_event_id: ID },
      { ...llm, ts_start: "2025-06-01T00:00:00Z", parent_event_id: ID }, // not fast-checked: zod's parse
    ]) {
      const res = buildCallRecord(input, ctx);
      expect(res.ok, JSON.stringify(input)).toBe(false);
      if (!res.ok) expect(res.errors.map((e) => e.field)).toContain("parent_event_id");
    }
  });

  it("a parent_event_id that is not a UUID is refused, naming the field", () => {
    for (const parent_event_id of ["resp_123", "", 42, `${ID}0`]) {
      const res = buildCallRecord({ ...llm, parent_event_id }, ctx);
      expect(res.ok, String(parent_event_id)).toBe(false);
      if (!res.ok) expect(res.errors.map((e) => e.field)).toEqual(["parent_event_id"]);
    }
  });

  it("another call's id is kept, lowercased", () => {
    const res = buildCallRecord({ ...llm, parent_event_id: ID.replace("0a", "0B").toUpperCase() }, ctx);
    expect(res.ok).toBe(true);
    if (res.ok) expect(res.record.parent_event_id).toBe(ID.replace("0a", "0b"));
  });
});
