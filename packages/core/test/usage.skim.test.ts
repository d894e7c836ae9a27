// Skimming a large reply before parsing it must leave every usage reader's input as it was: only payload
// values (image, audio and embedding bytes) go. Checked against an independent rule applied to the parsed
// objects, on every fixture and on random JSON, and through the readers themselves.
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  type Api,
  createSseUsageExtractor,
  EMBEDDING_INPUTS,
  extractFromResponse,
  type JsonSource,
  payloadSpans,
  SKIM_OVER,
  skimJson,
} from "../src/usage/index.js";
import { fixturePath, listFixtureFiles } from "./fixtures.js";
import { rng } from "./rng.js";

const PAYLOAD_KEYS = new Set(["b64_json", "partial_image_b64", "result", "data", "embedding"]);

/** The rule, stated on parsed JSON: payload members' strings become "", an embedding's flat array []. */
function withoutPayloads(v: unknown, key?: string): unknown {
  if (typeof v === "string") return key !== undefined && PAYLOAD_KEYS.has(key) ? "" : v;
  if (Array.isArray(v)) {
    const flat = v.every((x) => x === null || (typeof x !== "object" && typeof x !== "string"));
    return key === "embedding" && flat ? [] : v.map((x) => withoutPayloads(x));
  }
  if (typeof v === "object" && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withoutPayloads(x, k)]));
  return v;
}

const skimAll = (text: string) => skimJson(text, 0);

const LOCAL_FIXTURES = new URL("./fixtures/", import.meta.url);
const local = (rel: string) => new URL(rel, LOCAL_FIXTURES).pathname;
const localJson = readdirSync(LOCAL_FIXTURES, { recursive: true, encoding: "utf8" })
  .filter((f) => f.endsWith(".json"))
  .map(local);
const sharedJson = [...listFixtureFiles("providers"), ...listFixtureFiles("conformance")]
  .filter((f) => f.endsWith(".json"))
  .map(fixturePath);

describe("skimJson", () => {
  it("drops payloads exactly as the rule says, on every JSON fixture", () => {
    let dropped = 0;
    for (const file of [...sharedJson, ...localJson]) {
      const text = readFileSync(file, "utf8");
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        continue; // not one JSON document (none are, today)
      }
      const skimmed = skimAll(text);
      if (skimmed !== text) dropped++;
      expect(JSON.parse(skimmed), file).toEqual(withoutPayloads(parsed));
    }
    expect(dropped).toBeGreaterThanOrEqual(4); // embeddings and images fixtures carry payloads
  });

  it("leaves what the usage readers read unchanged", () => {
    const cases: Array<[Api, string]> = [
      ["openai.embeddings", fixturePath("providers/openai/embeddings.text-embedding-3-small.json")],
      ["openai.images", local("openai-images/images-generation.gpt-image-1.reference.json")],
      ["openai.responses", local("openai-images/responses.image-tool.gpt-5-nano.json")],
      ["openai.responses", local("openai-images/responses.image-tool.gpt-5-nano.tool-usage.json")],
    ];
    for (const [api, file] of cases) {
      const text = readFileSync(file, "utf8");
      const whole = extractFromResponse(api, JSON.parse(text));
      expect(whole, file).not.toBeNull();
      expect(extractFromResponse(api, JSON.parse(skimAll(text))), file).toEqual(whole);
    }
  });

  it("agrees with the rule on random JSON (escapes, unicode, spacing, nesting)", () => {
    const next = rng(20261206);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
    const KEYS = [...PAYLOAD_KEYS, "usage", "text", "type", "x", "data_", "resul", ""];
    const STRINGS = ['a"b', "\\", '\\"', "é✓😀", "\u0000\n\t", "data", "b64_json", ":", '":"', "]", "[{"];
    const str = (): string => Array.from({ length: Math.floor(next() * 4) }, () => pick(STRINGS)).join("");
    const value = (depth: number): unknown => {
      const r = next();
      if (depth > 3 || r < 0.3) return pick([str(), str(), 1.5e-7, -3, 0, true, null]);
      if (r < 0.5)
        return Array.from({ length: Math.floor(next() * 4) }, () =>
          next() < 0.5 ? next() : value(depth + 1),
        );
      return Object.fromEntries(
        Array.from({ length: Math.floor(next() * 5) }, () => [pick(KEYS), value(depth + 1)]),
      );
    };
    for (let n = 0; n < 3000; n++) {
      const doc = value(0);
      const text = JSON.stringify(doc, null, pick([0, 1, "\t", " \n "]));
      expect(JSON.parse(skimAll(text)), text).toEqual(withoutPayloads(JSON.parse(text)));
    }
  });

  it("reads a key spelled with escapes, or a payload key's name as a value, as ever", () => {
    const text = '{"dat\\u0061":"kept","type":"data","b64_json" :\n "gone","x":["data","b64_json"]}';
    expect(JSON.parse(skimAll(text))).toEqual({
      data: "kept",
      type: "data",
      b64_json: "",
      x: ["data", "b64_json"],
    });
  });

  it("keeps an embedding that is not a flat array, and the Images API's list", () => {
    const text =
      '{"embedding":[[1,2],[3]],"data":[{"embedding":[0.1, -2e-3 ,3]}],"result":{"type":"succeeded"}}';
    expect(JSON.parse(skimAll(text))).toEqual({
      embedding: [[1, 2], [3]],
      data: [{ embedding: [] }],
      result: { type: "succeeded" },
    });
  });

  it("many embeddings with no object or array after them are all skimmed", () => {
    // Each array's check looks for a "{" inside it. A search not bounded by the array went on to the end of
    // the text, so this case took ~4.7 s (quadratic) before its search was bounded, ~0.3 s since.
    const n = 200_000;
    const text = `{${'"embedding":[1,2],'.repeat(n)}"z":0}`;
    const skimmed = skimAll(text);
    expect(skimmed.length).toBe(text.length - 3 * n);
    expect(JSON.parse(skimmed)).toEqual({ embedding: [], z: 0 });
  });

  it("nested embeddings holding objects are checked each within its own reach (linear, not quadratic)", () => {
    // Each array's check looked for its "]" first: in nested arrays that is the innermost one, at the
    // middle of the text, so every array searched half the text (3.2 MB of this took ~3.3 s).
    const n = 20_000;
    const text = `${'{"embedding":['.repeat(n)}1${"]}".repeat(n)}`;
    let scanned = 0;
    const counted: JsonSource = {
      length: text.length,
      at: (i) => text.charCodeAt(i),
      find: (code, from) => {
        const i = text.indexOf(String.fromCharCode(code), from);
        scanned += (i === -1 ? text.length : i + 1) - from;
        return i;
      },
      holds: (code, from, to) => {
        const i = text.indexOf(String.fromCharCode(code), from);
        const hit = i !== -1 && i < to;
        scanned += (hit ? i + 1 : to) - from;
        return hit;
      },
    };
    expect(payloadSpans(counted)).toEqual([[14 * n, 14 * n + 1]]); // the innermost array, [1]
    expect(scanned).toBeLessThan(20 * text.length);
  });

  it("an embeddings request's texts (a string or a list of them) are left out; token ids and the rest are not", () => {
    const next = rng(7);
    const text = (n: number) =>
      Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(next() * 90))).join("");
    // Escapes, unicode and a quote inside: the list is read string by string, not by characters.
    const long = () => `${text(300)}"\\\n é😀]${text(10)}`;
    const [a, b, c, d, e] = [long(), long(), long(), long(), long()];
    const cases: Array<[unknown, unknown]> = [
      [
        { model: "text-embedding-3-small", input: [a, b, "short", c], dimensions: 256 },
        { model: "text-embedding-3-small", input: ["", "", "short", ""], dimensions: 256 },
      ],
      [
        { input: d, model: "m", user: e },
        { input: "", model: "m", user: e },
      ],
      [
        {
          model: "m",
          input: [
            [1, 2, 3],
            [4, 5],
          ],
          encoding_format: "float",
        },
        {
          model: "m",
          input: [
            [1, 2, 3],
            [4, 5],
          ],
          encoding_format: "float",
        },
      ],
      // Not a list of strings past its first element: read as it is from there on.
      [
        { model: "m", input: [a, 5, b] },
        { model: "m", input: ["", 5, b] },
      ],
      [
        { model: "m", input: [], extra: { note: a } },
        { model: "m", input: [], extra: { note: a } },
      ],
    ];
    for (const [doc, expected] of cases)
      for (const space of [0, 2]) {
        const raw = JSON.stringify(doc, null, space);
        expect(JSON.parse(skimJson(raw, 0, EMBEDDING_INPUTS)), raw).toEqual(expected);
      }
  });

  it("keeps text that is not JSON unparseable, and a short text as it is", () => {
    for (const bad of ['{"b64_json":"abc', '{"b64_json":"a\\"}', '{"embedding":[1,2', '{"data":"x"'])
      expect(() => JSON.parse(skimAll(bad)), bad).toThrow();
    const short = `{"b64_json":"${"A".repeat(100)}"}`;
    expect(skimJson(short)).toBe(short);
  });

  it("lets a stream's large final event be read without its images", () => {
    const sse = readFileSync(
      local("openai-images/responses.stream.image-tool.gpt-5-nano.tool-usage.sse"),
      "utf8",
    );
    const big = sse.replace(/"result":"[^"]*"/g, `"result":"${"QUJD".repeat(SKIM_OVER)}"`);
    expect(big.length).toBeGreaterThan(sse.length + SKIM_OVER);
    const read = (text: string) => {
      const x = createSseUsageExtractor("openai.responses");
      x.push(text);
      return x.result();
    };
    expect(read(big)).toEqual(read(sse));
    expect(read(sse)?.tool_model_call?.usage).toBeTruthy();
  });
});
