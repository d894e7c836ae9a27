import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { ATTRIBUTION_FIELDS, COST_FIELDS, USAGE_FIELDS } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer } from "../src/serve.js";
import { createKey, getJson, type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

// Every case here is malformed: each answer must be a 4xx that names the problem, and nothing may be
// stored. The only record stored on purpose is the control record of the first test.

const WS = "malformed";
let rt: Awaited<ReturnType<typeof openTestRuntime>>;
let key: string;

beforeAll(async () => {
  rt = await openTestRuntime();
  const { status, json } = await createKey(rt.app, rt.rootToken, WS, "ingest");
  expect(status).toBe(201);
  key = json.key;
});

afterAll(async () => {
  await rt?.close();
});

// ---------------------------------------------------------------------------------------------
// Per-record cases: one record, one defect; expect 422 and results[0] rejected naming `field`.
// ---------------------------------------------------------------------------------------------

interface FieldCase {
  name: string;
  /** The record as a JS value. */
  record: unknown;
  /** Or its exact JSON text, for what JS objects cannot express. */
  raw?: string;
  field: string;
  /** Where the exact field name is a known-wrong path (see report), any field under this prefix. */
  fieldPrefix?: string;
}

const fieldCases: FieldCase[] = [];
const add = (
  name: string,
  overrides: Record<string, unknown>,
  field: string,
  extra: Partial<FieldCase> = {},
) => fieldCases.push({ name, record: validRecord(overrides), field, ...extra });
const noTokens = { input_uncached_tokens: undefined, output_tokens: undefined };
const show = (v: unknown) => {
  const s = typeof v === "string" ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
  return s.length > 40 ? `${s.slice(0, 30)}…(${s.length} chars)` : s;
};

// --- missing required fields
add("missing event_id", { event_id: undefined }, "event_id");
add("missing ts_start", { ts_start: undefined }, "ts_start");
add("missing provider", { provider: undefined }, "provider");
add("missing model (and no model_requested)", { model: undefined }, "model");

// --- null where required
for (const f of ["event_id", "ts_start", "provider", "model"]) add(`null ${f}`, { [f]: null }, f);

// --- string fields: wrong types, empty, overlong
const STRING_FIELDS: [string, number][] = [
  ["provider", 64],
  ["model", 256],
  ["api", 64],
  ["workspace_id", 64],
  ["trace_id", 256],
  ["span_id", 256],
  ["parent_span_id", 256],
  ["model_requested", 256],
  ["service_tier", 64],
  ["error_type", 256],
  ["request_id", 256],
  ["price_ref", 256],
  ...ATTRIBUTION_FIELDS.map((f) => [f, 256] as [string, number]),
];
const NOT_STRINGS: unknown[] = [123, 0, true, false, [], ["x"], {}, { a: "b" }];
for (const [f, max] of STRING_FIELDS) {
  for (const v of NOT_STRINGS) add(`${f} = ${show(v)} (not a string)`, { [f]: v }, f);
  add(`${f} = "" (empty)`, { [f]: "" }, f);
  add(`${f} of ${max + 1} chars (max ${max})`, { [f]: "x".repeat(max + 1) }, f);
}
add("user_id of 300 chars", { user_id: "u".repeat(300) }, "user_id");
add("customer_id of 10000 chars", { customer_id: "c".repeat(10_000) }, "customer_id");

// --- event_id: bad uuids
const BAD_UUIDS: unknown[] = [
  "",
  "not-a-uuid",
  "0190a0b1c2d37e4f8a9b0c1d2e3f4a5b", // no dashes
  "0190a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a5", // one short
  "0190a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a5b0", // one long
  "0190a0b1-c2d3-7e4f-8a9b-0c1d2e3f4g5b", // non-hex
  "{0190a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a5b}",
  "urn:uuid:0190a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a5b",
  " 0190a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a5b",
  "0190a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a5b\n",
  "0190a0b1_c2d3_7e4f_8a9b_0c1d2e3f4a5b",
  12345,
  true,
  [],
  {},
  "x".repeat(300),
];
for (const v of BAD_UUIDS) add(`event_id = ${show(v)}`, { event_id: v }, "event_id");

// --- token fields: wrong types, negative, non-integer, huge
const BAD_TOKENS: [string, unknown][] = [
  ["a numeric string", "100"],
  ["true", true],
  ["null", null],
  ["an array", [100]],
  ["an object", { n: 100 }],
  ["negative (-1)", -1],
  ["negative (-1e6)", -1_000_000],
  ["non-integer (1.5)", 1.5],
  ["non-integer (1e-7)", 1e-7],
  ["1e13 (above the 1e12 cap)", 1e13],
  ["Number.MAX_SAFE_INTEGER+2", Number.MAX_SAFE_INTEGER + 2],
  ["2**64", 2 ** 64],
  ["1e300", 1e300],
];
for (const f of USAGE_FIELDS) for (const [label, v] of BAD_TOKENS) add(`${f} = ${label}`, { [f]: v }, f);

// --- money fields: wrong types, negative, fractional, too many digits
const BAD_MONEY: [string, unknown][] = [
  ["negative (-1)", -1],
  ["fractional (1.5)", 1.5],
  ['"abc"', "abc"],
  ['"-1"', "-1"],
  ['"1.5"', "1.5"],
  ['"1e3"', "1e3"],
  ['"" (empty)', ""],
  ["19 digits", "1234567890123456789"],
  ["Number.MAX_SAFE_INTEGER+2 as a number", Number.MAX_SAFE_INTEGER + 2],
  ["1e300", 1e300],
  ["true", true],
  ["null", null],
  ["an array", [1]],
];
for (const f of ["cost_nanousd", ...COST_FIELDS]) {
  for (const [label, v] of BAD_MONEY) {
    // A category alone is refused for the missing total; with a total, the category's own value is refused.
    add(`${f} = ${label}`, f === "cost_nanousd" ? { [f]: v } : { cost_nanousd: 0, [f]: v }, f);
  }
}

// --- other numeric fields
const NUMERIC: [string, unknown[]][] = [
  ["http_status", [99, 600, 200.5, "200", true, [], 1e300, -200]],
  ["attempt", [0, -1, 1001, 1.5, "1", null, true, 2 ** 64]],
  ["latency_ms", [-1, 1.5, 7 * 86_400_000 + 1, "10", true, 1e300, {}]],
  ["ttft_ms", [-1, 1.5, 7 * 86_400_000 + 1, "10", false, 1e300, []]],
  ["schema_version", [0, 2, "1", null, 1.5, true]],
];
for (const [f, values] of NUMERIC) for (const v of values) add(`${f} = ${show(v)}`, { [f]: v }, f);

// --- booleans and enums
const NOT_BOOLEANS: unknown[] = ["true", "false", 1, 0, null, [], {}];
for (const f of ["stream", "batch", "priced"])
  for (const v of NOT_BOOLEANS) add(`${f} = ${show(v)} (not a boolean)`, { [f]: v }, f);
const ENUMS: [string, unknown[]][] = [
  ["kind", ["LLM", "chat", "", 1, null, ["llm"]]],
  ["status", ["OK", "success", "", 200, null, true]],
  ["cost_source", ["Computed", "guessed", "", 0, null, {}]],
  ["data_mode", ["prod", "REAL", "", 1, null, ["real"]]],
];
for (const [f, values] of ENUMS) for (const v of values) add(`${f} = ${show(v)}`, { [f]: v }, f);

// --- timestamps
const BAD_TIMES: [string, unknown][] = [
  ["year 1900 (ISO)", "1900-01-01T00:00:00Z"],
  ["year 2200 (ISO)", "2200-01-01T00:00:00Z"],
  ["year 1900 (epoch ms)", Date.UTC(1900, 0, 1)],
  ["year 2200 (epoch ms)", Date.UTC(2200, 0, 1)],
  ["1999-12-31T23:59:59.999Z (just before 2000)", "1999-12-31T23:59:59.999Z"],
  ["2100-01-01T00:00:00Z (the exclusive bound)", "2100-01-01T00:00:00Z"],
  ['"yesterday"', "yesterday"],
  ['"now"', "now"],
  ["ISO without offset", "2024-06-01T12:00:00"],
  ["ISO date only", "2024-06-01"],
  ["month 13", "2024-13-01T00:00:00Z"],
  ["February 30", "2024-02-30T00:00:00Z"],
  ["hour 25", "2024-06-01T25:00:00Z"],
  ["RFC 2822 string", "Sat, 01 Jun 2024 12:00:00 GMT"],
  ["epoch seconds (1970 as ms)", 1_717_243_200],
  ["epoch ms as a string", "1717243200000"],
  ["fractional epoch ms", 1_717_243_200_000.5],
  ["1e300", 1e300],
  ["2**64", 2 ** 64],
  ['"" (empty)', ""],
  ["true", true],
  ["an array", [1_717_243_200_000]],
  ["an object", { ms: 1_717_243_200_000 }],
];
for (const f of ["ts_start", "ts_end"])
  for (const [label, v] of BAD_TIMES) add(`${f} = ${label}`, { [f]: v }, f);
add(
  "ts_end before ts_start",
  { ts_start: Date.UTC(2024, 5, 1, 12), ts_end: Date.UTC(2024, 5, 1, 11, 59, 59) },
  "ts_end",
);
add(
  "ts_end before ts_start (ISO with offsets)",
  { ts_start: "2024-06-01T12:00:00+00:00", ts_end: "2024-06-01T12:30:00+01:00" },
  "ts_end",
);

// --- unknown fields (typos and foreign spellings)
const UNKNOWN = [
  "custmer_id",
  "userid",
  "user",
  "Model",
  "model_name",
  "input_tokens",
  "prompt_tokens",
  "completion_tokens",
  "total_tokens",
  "cost_usd",
  "cost",
  "workspace",
  "event-id",
  "eventId",
  "timestamp",
  "tag",
  "meta",
  " provider",
];
for (const f of UNKNOWN) add(`unknown field ${JSON.stringify(f)}`, { [f]: "x" }, f);
{
  const rec = JSON.stringify(validRecord());
  fieldCases.push({
    name: 'unknown field "__proto__" (raw JSON)',
    record: null,
    raw: `${rec.slice(0, -1)},"__proto__":{"priced":true}}`,
    field: "__proto__",
  });
  fieldCases.push({
    name: "duplicate key: the last model (a number) wins",
    record: null,
    raw: `${rec.slice(0, -1)},"model":5}`,
    field: "model",
  });
}

// --- tags and metadata
const BAD_TAGS: [string, unknown, string][] = [
  ["a string", "a,b", "tags"],
  ["an object", { a: "b" }, "tags"],
  ["null", null, "tags"],
  ["a number", 5, "tags"],
  ["a number inside", ["a", 1], "tags.1"],
  ["null inside", [null], "tags.0"],
  ["an empty tag", [""], "tags.0"],
  ["a nested array", [["a"]], "tags.0"],
  ["65 tags", Array.from({ length: 65 }, (_, i) => `t${i}`), "tags"],
  ["a 129-char tag", ["ok", "t".repeat(129)], "tags.1"],
];
for (const [label, v, field] of BAD_TAGS) add(`tags: ${label}`, { tags: v }, field);
const BAD_METADATA: [string, unknown, string][] = [
  ["an array", ["a"], "metadata"],
  ["a string", "a=b", "metadata"],
  ["null", null, "metadata"],
  ["a number value", { a: 1 }, "metadata.a"],
  ["a boolean value", { a: true }, "metadata.a"],
  ["a null value", { a: null }, "metadata.a"],
  ["an object value", { a: { b: "c" } }, "metadata.a"],
  ["an array value", { a: ["b"] }, "metadata.a"],
  ["a 2049-char value", { a: "v".repeat(2049) }, "metadata.a"],
  ["65 keys", Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"])), "metadata"],
  ["an empty key", { "": "v" }, "metadata."],
  ["a 129-char key", { ["k".repeat(129)]: "v" }, `metadata.${"k".repeat(129)}`],
];
for (const [label, v, field] of BAD_METADATA) add(`metadata: ${label}`, { metadata: v }, field);

// --- cross-field rules
add("reasoning_tokens > output_tokens", { output_tokens: 10, reasoning_tokens: 11 }, "reasoning_tokens");
add(
  "reasoning_tokens without output_tokens",
  { output_tokens: undefined, reasoning_tokens: 1 },
  "reasoning_tokens",
);
add(
  "output_audio_tokens > output_tokens",
  { output_tokens: 10, output_audio_tokens: 11 },
  "output_audio_tokens",
);
add(
  "cost categories that do not add up",
  { cost_nanousd: 100, cost_input_uncached_nanousd: 40, cost_output_nanousd: 50 },
  "cost_nanousd",
);
add(
  "cost categories that exceed the total",
  { cost_nanousd: "10", cost_output_nanousd: "11" },
  "cost_nanousd",
);
add("cost categories without a total", { cost_output_nanousd: 5 }, "cost_nanousd");
add("workspace_id of another workspace", { workspace_id: "default" }, "workspace_id");
add("workspace_id differing only in case", { workspace_id: "MALFORMED" }, "workspace_id");
add("model null and model_requested null", { model: null, model_requested: null }, "model");

// --- usage_raw
const FIXTURE_USAGE = {
  prompt_tokens: 577,
  completion_tokens: 2320,
  completion_tokens_details: { reasoning_tokens: 1792 },
};
const USAGE_RAW_CASES: [string, Record<string, unknown>, string][] = [
  ["with an unknown api", { api: "openai.chatt", usage_raw: FIXTURE_USAGE }, "api"],
  ["with api of another vendor's format", { api: "cohere.chat", usage_raw: FIXTURE_USAGE }, "api"],
  ["without api", { api: undefined, usage_raw: FIXTURE_USAGE }, "api"],
  ["with api null", { api: null, usage_raw: FIXTURE_USAGE }, "api"],
  [
    "negative prompt_tokens",
    { usage_raw: { ...FIXTURE_USAGE, prompt_tokens: -1 } },
    "usage_raw.prompt_tokens",
  ],
  [
    "negative completion_tokens",
    { usage_raw: { prompt_tokens: 5, completion_tokens: -3 } },
    "usage_raw.completion_tokens",
  ],
  [
    "fractional prompt_tokens",
    { usage_raw: { prompt_tokens: 5.5, completion_tokens: 3 } },
    "usage_raw.prompt_tokens",
  ],
  [
    "string prompt_tokens",
    { usage_raw: { prompt_tokens: "5", completion_tokens: 3 } },
    "usage_raw.prompt_tokens",
  ],
  [
    "unsafe prompt_tokens (2**60)",
    { usage_raw: { prompt_tokens: 2 ** 60, completion_tokens: 3 } },
    "usage_raw.prompt_tokens",
  ],
  ["missing completion_tokens", { usage_raw: { prompt_tokens: 5 } }, "usage_raw.completion_tokens"],
  ["an empty object", { usage_raw: {} }, "usage_raw.prompt_tokens"],
  [
    "negative cached_tokens",
    { usage_raw: { prompt_tokens: 5, completion_tokens: 3, prompt_tokens_details: { cached_tokens: -1 } } },
    "usage_raw.prompt_tokens_details.cached_tokens",
  ],
  [
    "cached_tokens > prompt_tokens",
    { usage_raw: { prompt_tokens: 5, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 6 } } },
    "usage_raw.prompt_tokens_details.cached_tokens",
  ],
  [
    "reasoning > completion inside usage_raw",
    {
      usage_raw: {
        prompt_tokens: 5,
        completion_tokens: 3,
        completion_tokens_details: { reasoning_tokens: 4 },
      },
    },
    "usage_raw.completion_tokens_details.reasoning_tokens",
  ],
  [
    "anthropic negative input_tokens",
    {
      api: "anthropic.messages",
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      usage_raw: { input_tokens: -1, output_tokens: 1 },
    },
    "usage_raw.input_tokens",
  ],
  [
    "google negative promptTokenCount",
    {
      api: "google.generate_content",
      provider: "google",
      model: "gemini-2.5-flash",
      usage_raw: { promptTokenCount: -1, candidatesTokenCount: 1 },
    },
    "usage_raw.promptTokenCount",
  ],
  [
    "google negative prompt_token_count (snake_case, as Python's model_dump() sends it)",
    {
      api: "google.generate_content",
      provider: "google",
      model: "gemini-2.5-flash",
      usage_raw: { prompt_token_count: -1, candidates_token_count: 1 },
    },
    "usage_raw.prompt_token_count",
  ],
  [
    "bedrock negative inputTokens",
    { api: "bedrock.converse", usage_raw: { inputTokens: -1, outputTokens: 1 } },
    "usage_raw.inputTokens",
  ],
  [
    "responses negative input_tokens",
    { api: "openai.responses", usage_raw: { input_tokens: -1, output_tokens: 1 } },
    "usage_raw.input_tokens",
  ],
  [
    "embeddings negative prompt_tokens",
    { api: "openai.embeddings", usage_raw: { prompt_tokens: -1 } },
    "usage_raw.prompt_tokens",
  ],
  ["over 64 KiB of JSON", { usage_raw: { ...FIXTURE_USAGE, padding: "x".repeat(70_000) } }, "usage_raw"],
];
for (const [label, o, field] of USAGE_RAW_CASES) add(`usage_raw ${label}`, { ...noTokens, ...o }, field);
// Not an object at all: the field is reported as "usage_raw.usage" (see report), so any usage_raw path.
for (const v of ["x", 5, [1, 2], true])
  add(`usage_raw = ${show(v)} (not an object)`, { ...noTokens, usage_raw: v }, "usage_raw", {
    fieldPrefix: "usage_raw",
  });

// --- the item itself is not a record
for (const v of [5, "record", null, true, [], [validRecord()]])
  fieldCases.push({ name: `batch item = ${show(v)} (not an object)`, record: v, field: "(record)" });

// ---------------------------------------------------------------------------------------------
// Whole-body cases: expect the status and `{"error": {type, code, message}}`.
// ---------------------------------------------------------------------------------------------

interface BodyCase {
  name: string;
  body: string | Uint8Array;
  status: number;
  code: string;
  headers?: Record<string, string>;
}

const bodyCases: BodyCase[] = [];
const enc = new TextEncoder();
const bytes = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));
const VALID_BATCH = JSON.stringify([
  validRecord({ feature: "truncated" }),
  validRecord({ feature: "truncated" }),
]);

for (const cut of [
  1,
  2,
  10,
  40,
  Math.floor(VALID_BATCH.length / 2),
  VALID_BATCH.length - 2,
  VALID_BATCH.length - 1,
])
  bodyCases.push({
    name: `truncated JSON at byte ${cut} of ${VALID_BATCH.length}`,
    body: VALID_BATCH.slice(0, cut),
    status: 400,
    code: "invalid_json",
  });
for (const tail of ["x", "]", "{}", "[]", ",", " // comment", "\u0000", "\ufeff"])
  bodyCases.push({
    name: `trailing garbage ${JSON.stringify(tail)}`,
    body: VALID_BATCH + tail,
    status: 400,
    code: "invalid_json",
  });
const SYNTAX: [string, string][] = [
  ["NaN literal", '[{"ts_start": NaN}]'],
  ["Infinity literal", '[{"input_uncached_tokens": Infinity}]'],
  ["single quotes", "[{'provider': 'openai'}]"],
  ["unquoted keys", '[{provider: "openai"}]'],
  ["trailing comma", `${VALID_BATCH.slice(0, -1)},]`],
  ["leading comment", `/* hi */${VALID_BATCH}`],
  ["whitespace only", "   \n\t "],
  ["a NUL byte", "\u0000"],
  ["hex number", '[{"output_tokens": 0x10}]'],
  ["JSON lines", `${JSON.stringify(validRecord())}\n${JSON.stringify(validRecord())}`],
  ["form-encoded", "event_id=1&provider=openai"],
];
for (const [label, body] of SYNTAX)
  bodyCases.push({ name: `not JSON: ${label}`, body, status: 400, code: "invalid_json" });
bodyCases.push({ name: "empty body", body: "", status: 400, code: "empty_body" });
const NOT_A_BATCH: [string, string][] = [
  ["{}", "{}"],
  ["a bare number", "5"],
  ["a string", '"events"'],
  ["null", "null"],
  ["true", "true"],
  ['{"events": 5}', '{"events": 5}'],
  ['{"events": "x"}', '{"events": "x"}'],
  ['{"events": {}}', '{"events": {}}'],
  ['{"events": null}', '{"events": null}'],
  ['{"Events": [...]} (wrong case)', `{"Events": ${VALID_BATCH}}`],
  ['{"records": [...]}', `{"records": ${VALID_BATCH}}`],
  ["a single record object (not in an array)", JSON.stringify(validRecord())],
];
for (const [label, body] of NOT_A_BATCH)
  bodyCases.push({ name: `not a batch: ${label}`, body, status: 400, code: "invalid_batch" });
bodyCases.push({ name: "[] (empty batch)", body: "[]", status: 400, code: "empty_batch" });
bodyCases.push({
  name: '{"events": []} (empty batch)',
  body: '{"events": []}',
  status: 400,
  code: "empty_batch",
});
bodyCases.push({
  name: "10,001 valid records (one over the batch cap)",
  body: JSON.stringify(Array.from({ length: 10_001 }, () => validRecord({ feature: "too-many" }))),
  status: 413,
  code: "batch_too_large",
});
bodyCases.push({
  name: '{"events": [10,001 records]}',
  body: JSON.stringify({ events: Array.from({ length: 10_001 }, () => ({})) }),
  status: 413,
  code: "batch_too_large",
});
bodyCases.push({
  name: "11 MiB body in-process (over the 10 MiB cap)",
  body: `[${" ".repeat(11 * 1024 * 1024)}]`,
  status: 413,
  code: "body_too_large",
});
// A valid record whose user_id is replaced by raw bytes: strict UTF-8 must refuse the whole body.
const [pre, post] = JSON.stringify([validRecord({ user_id: "@@" })]).split("@@") as [string, string];
const BAD_UTF8: [string, number[]][] = [
  ["0xff", [0xff]],
  ["0xfe", [0xfe]],
  ["a lone continuation byte 0x80", [0x80]],
  ["a lone continuation byte 0xbf", [0xbf]],
  ["overlong '/' 0xc0 0xaf", [0xc0, 0xaf]],
  ["overlong NUL 0xc0 0x80", [0xc0, 0x80]],
  ["overlong 3-byte 0xe0 0x80 0xaf", [0xe0, 0x80, 0xaf]],
  ["a UTF-16 surrogate as UTF-8 0xed 0xa0 0x80", [0xed, 0xa0, 0x80]],
  ["above U+10FFFF 0xf4 0x90 0x80 0x80", [0xf4, 0x90, 0x80, 0x80]],
  ["a 5-byte sequence 0xf8 0x88 0x80 0x80 0x80", [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ["a 2-byte lead without continuation 0xc3 'a'", [0xc3, 0x61]],
];
for (const [label, b] of BAD_UTF8)
  bodyCases.push({
    name: `invalid UTF-8 inside a string: ${label}`,
    body: bytes(pre, b, post),
    status: 400,
    code: "invalid_utf8",
  });
bodyCases.push({
  name: "invalid UTF-8: 0xff as the whole body",
  body: bytes([0xff]),
  status: 400,
  code: "invalid_utf8",
});
bodyCases.push({
  name: "invalid UTF-8: truncated 3-byte sequence at the end",
  body: bytes(VALID_BATCH, [0xe2, 0x82]),
  status: 400,
  code: "invalid_utf8",
});
bodyCases.push({
  name: "invalid UTF-8: truncated 4-byte sequence at the end",
  body: bytes(VALID_BATCH, [0xf0, 0x9f, 0x98]),
  status: 400,
  code: "invalid_utf8",
});
bodyCases.push({
  name: "invalid UTF-8: Latin-1 encoded body (é as 0xe9)",
  body: Buffer.from(JSON.stringify([validRecord({ user_id: "café" })]), "latin1"),
  status: 400,
  code: "invalid_utf8",
});
bodyCases.push({
  name: "UTF-16LE body with BOM",
  body: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(VALID_BATCH, "utf16le")]),
  status: 400,
  code: "invalid_utf8",
});
bodyCases.push({
  name: "UTF-16BE body with BOM",
  body: Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(VALID_BATCH, "utf16le").swap16()]),
  status: 400,
  code: "invalid_utf8",
});
bodyCases.push({
  name: "UTF-32LE BOM",
  body: Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x00]), enc.encode("[]")]),
  status: 400,
  code: "invalid_utf8",
});
// content-encoding: gzip is inflated, within the same 10 MiB cap as a plain body; other encodings are refused.
const GZIP = { "content-encoding": "gzip" };
bodyCases.push({
  name: "content-encoding gzip on a body that is not gzip",
  body: VALID_BATCH,
  status: 400,
  code: "invalid_gzip",
  headers: GZIP,
});
bodyCases.push({
  name: "truncated gzip",
  body: gzipSync(VALID_BATCH).subarray(0, 20),
  status: 400,
  code: "invalid_gzip",
  headers: GZIP,
});
bodyCases.push({
  name: "gzip inflating past the 10 MiB cap (a small bomb)",
  body: gzipSync(`[${" ".repeat(11 * 1024 * 1024)}]`),
  status: 413,
  code: "body_too_large",
  headers: GZIP,
});
bodyCases.push({
  name: "gzip of invalid UTF-8",
  body: gzipSync(bytes(pre, [0xff], post)),
  status: 400,
  code: "invalid_utf8",
  headers: GZIP,
});
for (const encoding of ["br", "deflate", "gzip, br"])
  bodyCases.push({
    name: `content-encoding ${encoding}`,
    body: VALID_BATCH,
    status: 415,
    code: "unsupported_content_encoding",
    headers: { "content-encoding": encoding },
  });

// ---------------------------------------------------------------------------------------------

describe("POST /v1/events: malformed input", () => {
  it("control: the unmodified factory record is accepted (the only record stored here)", async () => {
    const { status, json } = await postEvents(rt.app, key, [validRecord({ feature: "control" })]);
    expect(status).toBe(200);
    expect(json.accepted).toBe(1);
  });

  describe("per-record defects → 422, rejected, naming the field", () => {
    it.each(fieldCases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
      const body = c.raw !== undefined ? `[${c.raw}]` : [c.record];
      const { status, json } = await postEvents(rt.app, key, body);
      expect(status, JSON.stringify(json)).toBe(422);
      expect(json).toMatchObject({ accepted: 0, duplicates: 0, rejected: 1 });
      const r = json.results[0];
      expect(r.index).toBe(0);
      expect(r.status).toBe("rejected");
      expect(Array.isArray(r.errors) && r.errors.length > 0).toBe(true);
      if (c.fieldPrefix) expect(r.errors[0].field.startsWith(c.fieldPrefix), r.errors[0].field).toBe(true);
      else expect(r.errors[0].field, JSON.stringify(r.errors)).toBe(c.field);
      for (const e of r.errors) {
        expect(typeof e.field).toBe("string");
        expect(typeof e.reason).toBe("string");
        expect(e.reason.length).toBeGreaterThan(0);
      }
      const rec = c.raw !== undefined ? JSON.parse(c.raw) : c.record;
      const id = rec && typeof rec === "object" && !Array.isArray(rec) ? rec.event_id : undefined;
      expect(r.event_id).toBe(typeof id === "string" ? id.slice(0, 64) : null);
    });
  });

  describe("whole-body defects → 4xx with an error object", () => {
    it.each(bodyCases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
      const { status, json } = await postEvents(rt.app, key, c.body, "", c.headers);
      expect(status, JSON.stringify(json)).toBe(c.status);
      expect(json).toEqual({ error: expect.any(Object) });
      expect(json.error).toMatchObject({ type: "invalid_request_error", code: c.code });
      expect(typeof json.error.message).toBe("string");
      expect(json.error.message.length).toBeGreaterThan(0);
    });
  });

  it("a batch of only malformed records of many kinds is refused item by item (422)", async () => {
    const sample = fieldCases.filter((c) => c.raw === undefined).slice(0, 100);
    const { status, json } = await postEvents(
      rt.app,
      key,
      sample.map((c) => c.record),
    );
    expect(status).toBe(422);
    expect(json.rejected).toBe(sample.length);
    json.results.forEach((r: Json, i: number) => {
      expect(r.index).toBe(i);
      expect(r.status).toBe("rejected");
    });
  });

  // Regression guard (found by these tests, now fixed): a deeply nested usage_raw (a few KB of JSON, far below the 64 KiB cap)
  // makes JSON.stringify in buildCallRecord/resolveUsage throw RangeError → 500 instead of a 4xx.
  it("deeply nested usage_raw (10,000 levels) is refused with a 4xx, not a 500", async () => {
    const rec = JSON.stringify(validRecord());
    const deep = `${"[".repeat(10_000)}1${"]".repeat(10_000)}`;
    const { status } = await postEvents(rt.app, key, `[${rec.slice(0, -1)},"usage_raw":${deep}}]`);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
  });

  // Regression guard (found by these tests, now fixed): for a usage_raw that is not an object the field is named "usage_raw.usage".
  it('usage_raw that is not an object is reported as field "usage_raw"', async () => {
    const { json } = await postEvents(rt.app, key, [validRecord({ ...noTokens, usage_raw: "x" })]);
    expect(json.results[0].errors[0].field).toBe("usage_raw");
  });

  it("deeply nested JSON as the whole body is refused without crashing", async () => {
    const { status } = await postEvents(rt.app, key, `${"[".repeat(100_000)}${"]".repeat(100_000)}`);
    expect(status).toBe(422); // one item (an array) that is not a record
  });

  it("after all cases exactly the control record is stored, and the server still answers", async () => {
    expect(await rt.store.count({ workspaceId: WS })).toBe(1);
    expect(await rt.store.count({ workspaceId: "default" })).toBe(0);
    const { status, json } = await getJson(rt.app, rt.rootToken, `/api/events?workspace=${WS}&limit=100000`);
    expect(status).toBe(200);
    expect(json.events).toHaveLength(1);
    expect(json.events[0].feature).toBe("control");
    const health = await rt.app.request("/healthz");
    expect(health.status).toBe(200);
    const again = await postEvents(rt.app, key, [validRecord({ feature: "after" })]);
    expect(again.status).toBe(200);
    expect(await rt.store.count({ workspaceId: WS })).toBe(2);
  });
});

describe("a 50 MB body over real HTTP", () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  let dataDir: string;
  const FIFTY_MB = 50 * 1024 * 1024;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "tollgate-test-"));
    server = await startServer({ dataDir, pricebookPath: null, port: 0, host: "127.0.0.1", log: () => {} });
  });

  afterAll(async () => {
    await server?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const expect413 = (status: number, json: Json) => {
    expect(status).toBe(413);
    expect(json.error).toMatchObject({ type: "invalid_request_error", code: "body_too_large" });
    expect(typeof json.error.message).toBe("string");
  };

  it("as one Buffer (with content-length) → 413, and /healthz still answers", {
    timeout: 30_000,
  }, async () => {
    // Starts like a real batch so only its size is wrong.
    const body = Buffer.alloc(FIFTY_MB, 0x20);
    Buffer.from(JSON.stringify([validRecord()]).slice(0, -1)).copy(body);
    body[FIFTY_MB - 1] = 0x5d;
    const res = await fetch(`${server.url}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.runtime.rootToken}`, "content-type": "application/json" },
      body,
    });
    expect413(res.status, await res.json());
    const h = await fetch(`${server.url}/healthz`);
    expect(h.status).toBe(200);
  });

  it("streamed in 1 MiB chunks without content-length → 413, and /healthz still answers", {
    timeout: 30_000,
  }, async () => {
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        `${server.url}/v1/events`,
        {
          method: "POST",
          headers: {
            authorization: `Bearer ${server.runtime.rootToken}`,
            "content-type": "application/json",
          },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d) => (text += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      req.write("[");
      const pump = () => {
        while (sent < 50) {
          sent++;
          if (req.destroyed) return;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        req.end("]");
      };
      pump();
    });
    expect413(status, JSON.parse(text));
    const h = await fetch(`${server.url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: "ok" });
  });

  it.each(["/v1/events", "/v1/traces"])(
    "%s refused 413 before its body was read: the reply says connection: close, and the connection closes",
    async (path) => {
      // A raw client that waits for the answer after the first bytes of its body: the rest never comes,
      // so the connection must not be offered for another request (it was dropped under the client).
      const sock = connect(Number(new URL(server.url).port), "127.0.0.1");
      let reply = "";
      sock.on("data", (d) => (reply += d));
      sock.on("error", () => {});
      const closed = new Promise((r) => sock.once("close", r));
      sock.write(
        `POST ${path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${server.runtime.rootToken}\r\n` +
          `content-type: application/json\r\ncontent-length: ${FIFTY_MB}\r\n\r\n[`,
      );
      sock.write(Buffer.alloc(64 * 1024, 0x20));
      await closed;
      const head = reply.split("\r\n\r\n")[0]!;
      expect(head).toMatch(/^HTTP\/1\.1 413 /);
      expect(head).toMatch(/\r\nconnection: close(\r\n|$)/i);
      expect(head).not.toMatch(/keep-alive/i);
      expect413(413, JSON.parse(reply.slice(head.length + 4)));
    },
  );

  it("stored nothing", async () => {
    expect(await server.runtime.store.count({ workspaceId: "default" })).toBe(0);
  });
});

it("covers at least 200 distinct malformed inputs", () => {
  const names = [...fieldCases.map((c) => c.name), ...bodyCases.map((c) => c.name)];
  expect(new Set(names).size).toBe(names.length); // every case has its own descriptive name
  expect(names.length + 2 /* 50 MB over HTTP, twice */).toBeGreaterThanOrEqual(200);
});
