// The OTLP protobuf decoder reads the wire format itself. Every export protobufjs encodes (the reference
// encoder, from the same field numbers) must decode to exactly what was encoded, whatever fields the decoder
// skips; and no broken body may throw anything but OtlpDecodeError.
import { describe, expect, it } from "vitest";
import { Rng } from "../src/demo/random.js";
import { decodeJsonExport, MAX_JSON_CONTAINERS } from "../src/ingest/otlp/decode-json.js";
import { decodeProtobufExport, MAX_ATTRIBUTE_VALUES } from "../src/ingest/otlp/decode-protobuf.js";
import type { AttrMap, AttrValue, DecodedExport, DecodedSpan } from "../src/ingest/otlp/spans.js";
import { OtlpDecodeError, OtlpTooLarge, OtlpTooManySpans } from "../src/ingest/otlp/spans.js";
import { ExportTraceServiceRequest, lenField } from "./otlp-request-proto.js";

const utf8 = (text: string) => new TextEncoder().encode(text);

/** The demo data's seeded PRNG, as a function: the same random exports on every run. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

type Pb = Record<string, unknown>;
const TEXTS = [
  "",
  "chat",
  "gen_ai.usage.input_tokens",
  "héllo wörld",
  "用户",
  "😀 emoji",
  "a".repeat(40),
  "x\u0000y",
];
const KEYS = [
  "gen_ai.provider.name",
  "user.id",
  "k",
  "gen_ai.usage.output_tokens",
  "ключ",
  "tollgate.metadata.x",
];

/**
 * A random AnyValue: its protobufjs form and the value the decoder must give for it. The reference
 * descriptor declares AnyValue's members as plain proto3 fields, so protobufjs leaves out a member holding
 * its default ("", false, 0, no bytes): that AnyValue arrives empty and decodes to null.
 */
function anyValue(rand: () => number, depth: number): [Pb, AttrValue] {
  const pick = Math.floor(rand() * (depth < 3 ? 9 : 7));
  const text = TEXTS[Math.floor(rand() * TEXTS.length)]!;
  switch (pick) {
    case 0:
      return [{ stringValue: text }, text === "" ? null : text];
    case 1: {
      const b = rand() < 0.5;
      return [{ boolValue: b }, b || null];
    }
    case 2: {
      const n = Math.floor(rand() * 2 ** 31) * (rand() < 0.3 ? -1 : 1);
      return [{ intValue: n }, n === 0 ? null : n];
    }
    case 3: {
      // Past 2^53 (and below -2^53) the value stays exact as a bigint.
      const big = BigInt.asIntN(64, BigInt(Math.floor(rand() * 2 ** 32)) * 2n ** 32n + 123456789n);
      const low = Number(BigInt.asUintN(32, big)) | 0;
      const high = Number(BigInt.asIntN(32, big >> 32n));
      const safe = big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER);
      return [{ intValue: { low, high } }, safe ? Number(big) : big];
    }
    case 4: {
      const d = (rand() - 0.5) * 1e6;
      return [{ doubleValue: d }, d];
    }
    case 5: {
      const bytes = new Uint8Array(
        Array.from({ length: Math.floor(rand() * 5) }, () => Math.floor(rand() * 256)),
      );
      return [{ bytesValue: bytes }, bytes.length ? bytes : null];
    }
    case 6:
      return [{}, null];
    case 7: {
      const items = Array.from({ length: Math.floor(rand() * 3) }, () => anyValue(rand, depth + 1));
      return [{ arrayValue: { values: items.map((i) => i[0]) } }, items.map((i) => i[1])];
    }
    default: {
      const [kvs, map] = keyValues(rand, depth + 1, 3);
      return [{ kvlistValue: { values: kvs } }, map];
    }
  }
}

function keyValues(rand: () => number, depth: number, max: number): [Pb[], AttrMap] {
  const kvs: Pb[] = [];
  const map: AttrMap = {};
  for (let i = Math.floor(rand() * max); i > 0; i--) {
    const key = KEYS[Math.floor(rand() * KEYS.length)]!;
    const [pb, value] = anyValue(rand, depth);
    kvs.push({ key, value: pb });
    map[key] = value; // a repeated key: the last one wins
  }
  return [kvs, map];
}

const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

function randomExport(rand: () => number): { pb: Pb; expected: DecodedExport } {
  const pbResources: Pb[] = [];
  const expected: DecodedExport = [];
  for (let r = Math.ceil(rand() * 2); r > 0; r--) {
    const [resourceKvs, resource] = keyValues(rand, 0, 3);
    const scopes: Pb[] = [];
    const spans: DecodedSpan[] = [];
    for (let s = Math.ceil(rand() * 2); s > 0; s--) {
      const pbSpans: Pb[] = [];
      for (let k = Math.floor(rand() * 3); k > 0; k--) {
        const traceId = new Uint8Array(Array.from({ length: 16 }, () => Math.floor(rand() * 256)));
        const spanId = new Uint8Array(Array.from({ length: 8 }, () => Math.floor(rand() * 256)));
        const parent = rand() < 0.5 ? new Uint8Array(0) : spanId.map((b) => b ^ 0xff);
        const start = BigInt(Math.floor(rand() * 2 ** 31)) * 1_000_000_000n + 7n;
        const end = rand() < 0.2 ? 0n : start + BigInt(Math.floor(rand() * 1e9));
        const [attrKvs, attributes] = keyValues(rand, 0, 8);
        const name = TEXTS[Math.floor(rand() * TEXTS.length)]!;
        const kind = Math.floor(rand() * 6);
        const code = Math.floor(rand() * 3);
        const long = (v: bigint) => ({
          low: Number(v & 0xffffffffn) | 0,
          high: Number(v >> 32n) | 0,
          unsigned: true,
        });
        pbSpans.push({
          traceId,
          spanId,
          parentSpanId: parent,
          name,
          kind,
          startTimeUnixNano: long(start),
          endTimeUnixNano: long(end),
          attributes: attrKvs,
          status: { code, message: code === 2 ? "boom" : "" },
        });
        spans.push({
          traceId: hexOf(traceId),
          spanId: hexOf(spanId),
          parentSpanId: hexOf(parent),
          name,
          kind,
          startNs: start,
          endNs: end,
          attributes,
          statusCode: code,
          statusMessage: code === 2 ? "boom" : "",
        });
      }
      scopes.push({ spans: pbSpans });
    }
    pbResources.push({ resource: { attributes: resourceKvs }, scopeSpans: scopes });
    expected.push({ resource, spans });
  }
  return { pb: { resourceSpans: pbResources }, expected };
}

/** Protobuf fields the decoder does not read, appended to a message: they must be skipped, not misread. */
function withUnknownFields(bytes: Uint8Array): Uint8Array {
  const extra = [
    0x20,
    0x96,
    0x01, // field 4, varint 150
    0x29,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8, // field 5, fixed64
    0x35,
    1,
    2,
    3,
    4, // field 6, fixed32
    0x3a,
    0x03,
    0xff,
    0xfe,
    0xfd, // field 7, 3 bytes that are not UTF-8 (never read as text)
  ];
  return Uint8Array.from([...bytes, ...extra]);
}

describe("OTLP protobuf decoding", () => {
  it("gives back exactly what protobufjs encoded, for 2,000 random exports", () => {
    const rand = rng(7);
    for (let i = 0; i < 2000; i++) {
      const { pb, expected } = randomExport(rand);
      // A plain Uint8Array body (protobufjs gives a Buffer): decoded bytes values are views of the body.
      const bytes = new Uint8Array(
        ExportTraceServiceRequest.encode(ExportTraceServiceRequest.fromObject(pb)).finish(),
      );
      expect(decodeProtobufExport(bytes)).toEqual(expected);
      expect(decodeProtobufExport(withUnknownFields(bytes))).toEqual(expected);
    }
  });

  it("gives every short string back as sent, though recent ones are reused: 30,000 distinct, many repeated", () => {
    // More distinct short ASCII texts than the decoder keeps, so its cache slots collide and are replaced;
    // each text twice (the second read may come from the cache), next to a non-ASCII one of the same length.
    const rand = rng(11);
    const ascii = (n: number) =>
      String.fromCharCode(...Array.from({ length: n }, () => 32 + Math.floor(rand() * 95)));
    for (let batch = 0; batch < 30; batch++) {
      const attributes: AttrMap = {};
      const kvs: Pb[] = [];
      for (let i = 0; i < 1000; i++) {
        const key = `${ascii(1 + (i % 24))}#${batch}.${i}`;
        const value = i % 10 === 9 ? `é${ascii(i % 31)}` : ascii(1 + (i % 32));
        attributes[key] = value;
        attributes[`${key}/again`] = value;
        kvs.push(
          { key, value: { stringValue: value } },
          { key: `${key}/again`, value: { stringValue: value } },
        );
      }
      const pb = {
        resourceSpans: [
          {
            resource: { attributes: [] },
            scopeSpans: [
              {
                spans: [
                  {
                    traceId: new Uint8Array(16).fill(1),
                    spanId: new Uint8Array(8).fill(2),
                    name: "s",
                    startTimeUnixNano: { low: 7, high: 1, unsigned: true },
                    attributes: kvs,
                  },
                ],
              },
            ],
          },
        ],
      };
      const bytes = ExportTraceServiceRequest.encode(ExportTraceServiceRequest.fromObject(pb)).finish();
      expect(decodeProtobufExport(bytes)[0]!.spans[0]!.attributes).toEqual(attributes);
    }
  });

  it("skips what it does not read inside a span (events, links, trace_state, flags)", () => {
    const { pb, expected } = randomExport(rng(11));
    const bytes = ExportTraceServiceRequest.encode(ExportTraceServiceRequest.fromObject(pb)).finish();
    // A minimal export whose one span also carries trace_state (3), an event (11), a link (13) and flags (16).
    const span = Uint8Array.from([
      0x0a,
      16,
      ...Array(16).fill(1), // trace_id
      0x12,
      8,
      ...Array(8).fill(2), // span_id
      0x1a,
      3,
      0x6b,
      0x3d,
      0x76, // trace_state "k=v"
      0x39,
      1,
      0,
      0,
      0,
      0,
      0,
      0,
      0, // start = 1
      0x5a,
      2,
      0x11,
      0x00, // an event, opaque here
      0x6a,
      0, // an empty link
      0x85,
      0x01,
      1,
      0,
      0,
      0, // flags (fixed32, field 16)
    ]);
    const scope = Uint8Array.from([0x12, span.length, ...span]);
    const rs = Uint8Array.from([0x12, scope.length, ...scope]);
    const out = decodeProtobufExport(Uint8Array.from([0x0a, rs.length, ...rs, ...bytes]));
    expect(out[0]!.spans[0]).toMatchObject({ traceId: "01".repeat(16), spanId: "02".repeat(8), startNs: 1n });
    expect(out.slice(1)).toEqual(expected);
  });

  it("throws only OtlpDecodeError for broken bodies: every truncation and 5,000 random byte flips", () => {
    const rand = rng(3);
    const { pb } = randomExport(rand);
    const bytes = ExportTraceServiceRequest.encode(ExportTraceServiceRequest.fromObject(pb)).finish();
    const tryDecode = (b: Uint8Array) => {
      try {
        decodeProtobufExport(b);
      } catch (e) {
        expect(e).toBeInstanceOf(OtlpDecodeError);
      }
    };
    for (let n = 0; n < bytes.length; n++) tryDecode(bytes.subarray(0, n));
    for (let i = 0; i < 5000; i++) {
      const b = Uint8Array.from(bytes);
      b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      tryDecode(b);
    }
  });

  it("stops at the span limit, counted over the whole export, instead of decoding every span first", () => {
    const exportOf = (...counts: number[]) =>
      ExportTraceServiceRequest.encode({
        resourceSpans: counts.map((n) => ({
          scopeSpans: [{ spans: Array.from({ length: n }, () => ({})) }],
        })),
      }).finish();
    expect(decodeProtobufExport(exportOf(4_000, 6_000)).flatMap((rs) => rs.spans)).toHaveLength(10_000);
    expect(() => decodeProtobufExport(exportOf(4_000, 6_001))).toThrow(OtlpTooManySpans);
    expect(() => decodeProtobufExport(exportOf(4_000, 6_001))).toThrow(/at most 10000 spans/);
    // Empty resourceSpans cost two bytes each too.
    expect(() => decodeProtobufExport(exportOf(...new Array(10_001).fill(0)))).toThrow(/10000 resourceSpans/);
  });

  it("stops at the attribute value limit, counting attributes, array elements and kvlist entries over the whole export", () => {
    const keyValue = (key: string, anyValue: Uint8Array) =>
      Buffer.concat([lenField(1, Buffer.from(key)), lenField(2, anyValue)]);
    // n empty AnyValues (as array elements) or empty KeyValues (as kvlist entries): both are 0a 00.
    const empties = (n: number) => Buffer.alloc(2 * n, Uint8Array.from([0x0a, 0x00]));
    // A resource attribute holding an array of `inArray` values, and a span attribute holding a kvlist of
    // `inKvlist` entries: 2 + inArray + inKvlist values.
    const exportOf = (inArray: number, inKvlist: number) => {
      const resource = lenField(1, lenField(1, keyValue("r", lenField(5, empties(inArray)))));
      const span = lenField(9, keyValue("k", lenField(6, empties(inKvlist))));
      return new Uint8Array(lenField(1, Buffer.concat([resource, lenField(2, lenField(2, span))])));
    };
    const inArray = 1_000_000;
    const [rs] = decodeProtobufExport(exportOf(inArray, MAX_ATTRIBUTE_VALUES - 2 - inArray));
    expect(rs!.resource.r).toHaveLength(inArray);
    expect(rs!.spans[0]!.attributes.k).toEqual({ "": null });
    expect(() => decodeProtobufExport(exportOf(inArray, MAX_ATTRIBUTE_VALUES - 1 - inArray))).toThrow(
      OtlpTooLarge,
    );
    expect(() => decodeProtobufExport(exportOf(inArray + 1, MAX_ATTRIBUTE_VALUES - 2 - inArray))).toThrow(
      /at most 2000000 attribute values/,
    );
  });

  it("refuses an attribute value nested deeper than 16 arrays by name, however deep (no stack overflow)", () => {
    const nestedExport = (levels: number) => {
      let value: Buffer = Buffer.alloc(0);
      for (let i = 0; i < levels; i++) value = lenField(5, lenField(1, value));
      const span = lenField(9, Buffer.concat([lenField(1, Buffer.from("k")), lenField(2, value)]));
      return new Uint8Array(lenField(1, lenField(2, lenField(2, span))));
    };
    let deepest: AttrValue = decodeProtobufExport(nestedExport(16))[0]!.spans[0]!.attributes.k!;
    for (let i = 0; i < 16; i++) deepest = (deepest as AttrValue[])[0]!;
    expect(deepest).toBeNull();
    for (const levels of [17, 10_000])
      expect(() => decodeProtobufExport(nestedExport(levels))).toThrow(
        new OtlpDecodeError("an attribute value is nested deeper than 16 levels"),
      );
  });

  it("the JSON decoder counts spans before it validates and copies them", () => {
    const json = (n: number) =>
      utf8(`{"resourceSpans":[{"scopeSpans":[{"spans":[${new Array(n).fill("{}").join(",")}]}]}]}`);
    expect(decodeJsonExport(json(10_000))[0]!.spans).toHaveLength(10_000);
    expect(() => decodeJsonExport(json(10_001))).toThrow(OtlpTooManySpans);
  });

  it("the JSON decoder counts objects and arrays before JSON.parse builds them; braces in strings are text", () => {
    const attrs = (value: string) =>
      utf8(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":${value}}]}]}]}]}`);
    const withArrays = (n: number) =>
      attrs(`{"arrayValue":{"values":[${new Array(n).fill("[]").join(",")}]}}`);
    // The export's own objects and arrays around the value are 12. At the limit the body is parsed (and
    // refused by name: [] is no AnyValue); one more is refused before parsing.
    expect(() => decodeJsonExport(withArrays(MAX_JSON_CONTAINERS - 12))).toThrow(
      /values\.0: must be an AnyValue/,
    );
    expect(() => decodeJsonExport(withArrays(MAX_JSON_CONTAINERS - 11))).toThrow(OtlpTooLarge);
    expect(() => decodeJsonExport(withArrays(MAX_JSON_CONTAINERS - 11))).toThrow(
      /at most 2000000 objects and arrays/,
    );
    // The same count of braces and brackets inside a string (escaped quotes included) is one string value.
    const text = `${'{[\\"'.repeat(MAX_JSON_CONTAINERS / 2)}é`;
    const [rs] = decodeJsonExport(attrs(JSON.stringify({ stringValue: text })));
    expect(rs!.spans[0]!.attributes.k).toBe(text);
  });

  it("says what is wrong and where", () => {
    expect(() => decodeProtobufExport(Uint8Array.from([0x0a, 0x05, 0x01]))).toThrow(
      /length runs past the end of its message at byte 2/,
    );
    // an unknown field 2 in the deprecated group wire type
    expect(() => decodeProtobufExport(Uint8Array.from([0x13]))).toThrow(/unsupported wire type 3/);
    // field 1 (resource_spans) sent as a varint
    expect(() => decodeProtobufExport(Uint8Array.from([0x08, 0x01]))).toThrow(
      /field 1 has wire type 0, expected 2/,
    );
    const badUtf8Name = Uint8Array.from([0x2a, 2, 0xc3, 0x28]);
    const scope = Uint8Array.from([0x12, badUtf8Name.length, ...badUtf8Name]);
    const rs = Uint8Array.from([0x12, scope.length, ...scope]);
    expect(() => decodeProtobufExport(Uint8Array.from([0x0a, rs.length, ...rs]))).toThrow(/not valid UTF-8/);
  });
});
