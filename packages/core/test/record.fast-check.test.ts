// The input schema's fast check against zod itself: on valid records, records at every bound and records
// broken field by field, the fast check must never pass what zod refuses or would change (other than by
// filling in defaults), and it must pass the plain records ingest sees most.
import { describe, expect, it } from "vitest";
import { uuidv7 } from "../src/ids.js";
import { PricingEngine } from "../src/pricing/index.js";
import {
  ATTRIBUTION_FIELDS,
  buildCallRecord,
  CallRecordInputSchema,
  COST_FIELDS,
  FAST_CHECK_FIELDS,
  INPUT_DEFAULTS,
  INPUT_LIMITS as L,
  passesFastCheck,
  storedRecordProblem,
} from "../src/record/index.js";
import { USAGE_FIELDS } from "../src/usage/types.js";
import { rng } from "./rng.js";

const TS = Date.UTC(2026, 5, 1, 12);
const base = {
  event_id: "0190f5e2-7c3a-7b1e-8f00-000000000001",
  ts_start: TS,
  ts_end: TS + 900,
  provider: "openai",
  api: "openai.chat",
  model: "gpt-4o-mini",
  input_uncached_tokens: 1200,
  cache_read_tokens: 1024,
  output_tokens: 300,
  reasoning_tokens: 100,
  user_id: "u-1",
  customer_id: "acme",
  feature: "chat",
  deployment: "prod",
  tags: ["a", "b"],
  metadata: { team: "search" },
  data_mode: "test",
};

const str = (n: number, c = "x") => c.repeat(n);
const LONE = "ab\ud800c";
/** Values worth trying in any field: the bounds of every rule, wrong types, and the odd ones. */
const VALUES: unknown[] = [
  undefined,
  null,
  "",
  "x",
  str(L.shortText),
  str(L.shortText + 1),
  str(L.tag),
  str(L.tag + 1),
  str(L.text),
  str(L.text + 1),
  str(L.metadataValue),
  str(L.metadataValue + 1),
  LONE,
  "é✓😀",
  "2026-06-01T12:00:00Z",
  "2026-06-01T12:00:00",
  "123",
  "1".repeat(L.nanoDigits),
  "1".repeat(L.nanoDigits + 1),
  "-5",
  "0190F5E2-7C3A-7B1E-8F00-00000000000A",
  "0190f5e2-7c3a-7b1e-8f00-00000000000",
  0,
  -1,
  1,
  1.5,
  99,
  100,
  599,
  600,
  1000,
  1001,
  L.maxDurationMs,
  L.maxDurationMs + 1,
  L.maxTokens,
  L.maxTokens + 1,
  L.minTs - 1,
  L.minTs,
  L.maxTs - 1,
  L.maxTs,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 1,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  true,
  false,
  [],
  ["t"],
  Array.from({ length: L.maxTags }, (_, i) => `t${i}`),
  Array.from({ length: L.maxTags + 1 }, (_, i) => `t${i}`),
  [""],
  [LONE],
  [str(L.tag + 1)],
  [1],
  {},
  { k: "v" },
  { k: 1 },
  { "": "v" },
  { k: LONE },
  Object.fromEntries(Array.from({ length: L.maxMetadataKeys }, (_, i) => [`k${i}`, "v"])),
  Object.fromEntries(Array.from({ length: L.maxMetadataKeys + 1 }, (_, i) => [`k${i}`, "v"])),
  JSON.parse('{"__proto__": "v"}'),
  Object.create(null),
  new Date(TS),
  "llm",
  "tool",
  "embedding",
  "error",
  "killed",
  "reported",
  "estimated",
  "real",
  "demo",
];
const FIELDS = [...FAST_CHECK_FIELDS, "unknown_field"];

/** What zod's parse of a record that passed the fast check must be: the record, defaults filled in. */
function withDefaults(input: Record<string, unknown>): Record<string, unknown> {
  const sent = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  return { ...INPUT_DEFAULTS, tags: [], metadata: {}, ...sent };
}

function agree(input: unknown): { fast: boolean; zod: boolean } {
  const fast = passesFastCheck(input);
  const parsed = CallRecordInputSchema.safeParse(input);
  if (fast) {
    expect(parsed.success, JSON.stringify(input)).toBe(true);
    expect(parsed.data).toEqual(withDefaults(input as Record<string, unknown>));
  }
  return { fast, zod: parsed.success };
}

describe("passesFastCheck", () => {
  it("knows exactly the schema's fields", () => {
    expect([...FAST_CHECK_FIELDS].sort()).toEqual(Object.keys(CallRecordInputSchema.shape).sort());
  });

  it("passes plain records of every shape ingest sees", () => {
    const records: Record<string, unknown>[] = [
      base,
      { event_id: base.event_id, ts_start: TS },
      { ...base, kind: "tool", provider: undefined, model: undefined },
      { ...base, cost_nanousd: 5000, cost_input_uncached_nanousd: "5000", cost_source: "reported" },
      {
        ...base,
        usage_raw: { prompt_tokens: 5, nested: [1, { a: null }] },
        status: "error",
        http_status: 500,
      },
      { ...base, trace_id: "t", span_id: "s", parent_span_id: null, agent_run_id: "r", attempt: 3 },
      JSON.parse(JSON.stringify(base)),
    ];
    for (const r of records) expect(agree(r)).toEqual({ fast: true, zod: true });
  });

  it("leaves to zod what needs converting or is refused", () => {
    const cases: unknown[] = [
      { ...base, ts_start: "2026-06-01T12:00:00Z" },
      { ...base, extra: 1 },
      JSON.parse(`{"event_id":"${base.event_id}","ts_start":${TS},"__proto__":{"x":1}}`),
      { ...base, metadata: JSON.parse('{"__proto__":"v"}') },
      { ...base, event_id: undefined },
      { ...base, ts_start: undefined },
      null,
      [],
      "x",
      Object.assign(Object.create(null), base),
    ];
    for (const c of cases) expect(agree(c).fast, JSON.stringify(c)).toBe(false);
  });

  it("agrees with zod on every field set to every bound and wrong value", () => {
    let fast = 0;
    let valid = 0;
    for (const field of FIELDS)
      for (const value of VALUES) {
        const res = agree({ ...base, [field]: value });
        if (res.zod) valid++;
        if (res.fast) fast++;
      }
    // Not vacuous: most of the valid variants take the fast path.
    expect(valid).toBeGreaterThan(500);
    expect(fast / valid).toBeGreaterThan(0.8);
  });

  it("agrees with zod on 20,000 seeded random records of several broken or odd fields", () => {
    const rand = rng(20261204);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const groups = [FAST_CHECK_FIELDS, USAGE_FIELDS, COST_FIELDS, ATTRIBUTION_FIELDS];
    let fast = 0;
    for (let i = 0; i < 20_000; i++) {
      const r: Record<string, unknown> =
        rand() < 0.5 ? { ...base } : { event_id: base.event_id, ts_start: TS };
      const n = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < n; k++) r[pick(pick(groups))] = pick(VALUES);
      if (agree(r).fast) fast++;
    }
    expect(fast).toBeGreaterThan(1000);
  });
});

describe("storedRecordProblem", () => {
  const engine = new PricingEngine();
  const built = () => {
    const b = buildCallRecord(
      {
        event_id: uuidv7(),
        ts_start: Date.now(),
        provider: "openai",
        model: "gpt-4o",
        input_uncached_tokens: 10,
      },
      { workspaceId: "default", engine },
    );
    if (!b.ok) throw new Error(JSON.stringify(b.errors));
    return b.record;
  };

  it("finds nothing wrong with a record as the builder makes it", () => {
    expect(storedRecordProblem(built())).toBeNull();
  });

  it("names the first field a store would refuse, or that a record cannot lack", () => {
    const r = built();
    expect(storedRecordProblem({ ...r, event_id: `${r.event_id.slice(0, 35)}#` })).toBe("event_id");
    expect(storedRecordProblem({ ...r, ts_start: undefined })).toBe("ts_start");
    expect(storedRecordProblem({ ...r, input_uncached_tokens: 1.5 })).toBe("input_uncached_tokens");
    expect(storedRecordProblem({ ...r, cost_nanousd: 5 })).toBe("cost_nanousd"); // money is a bigint
    expect(storedRecordProblem({ ...r, cost_nanousd: 2n ** 63n })).toBe("cost_nanousd");
    expect(storedRecordProblem({ ...r, kind: "llama" })).toBe("kind");
    // A column every version wrote and the stores require (a key a damaged byte renamed in a spool line).
    expect(storedRecordProblem({ ...r, status: undefined })).toBe("status");
    expect(storedRecordProblem({ ...r, cost_output_nanousd: undefined })).toBe("cost_output_nanousd");
    expect(storedRecordProblem({ ...r, output_tokens: undefined })).toBe("output_tokens");
    expect(storedRecordProblem({ ...r, model: null })).toBe("model");
  });

  it("lets through what an older version's record lacks, and fields it does not know", () => {
    const { key_id: _, ...older } = built();
    expect(storedRecordProblem({ ...older, from_the_future: 1 })).toBeNull();
  });
});
