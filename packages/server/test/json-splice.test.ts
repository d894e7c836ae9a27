import { describe, expect, it } from "vitest";
import { prependMember, replaceSpans, topLevelValueSpans } from "../src/gateway/json-splice.js";

/** The texts of top-level member `key`'s values, as found in `text`. */
function valueTexts(text: string, key: string): string[] {
  const body = Buffer.from(text);
  return topLevelValueSpans(body, key).map((span) => body.toString("utf8", span.start, span.end));
}
/** The text of top-level member `key`'s one value, or null. */
function valueText(text: string, key: string): string | null {
  const [one, ...more] = valueTexts(text, key);
  expect(more).toEqual([]);
  return one ?? null;
}

describe("json-splice: top-level members found by byte scan", () => {
  it("finds a member's value exactly, whatever its kind and spacing", () => {
    expect(valueText('{"a":1,"stream_options":null,"b":2}', "stream_options")).toBe("null");
    expect(valueText('{ "stream_options" :\n\t{"x": [1, {"y": "}"}]} \n}', "stream_options")).toBe(
      '{"x": [1, {"y": "}"}]}',
    );
    expect(valueText('{"stream_options":"a\\"b}"}', "stream_options")).toBe('"a\\"b}"');
    expect(valueText('{"m":"x","stream_options":12345678901234567890}', "stream_options")).toBe(
      "12345678901234567890",
    );
  });

  it("skips the same name nested, in strings, or as a value", () => {
    const text = JSON.stringify({
      messages: [{ stream_options: { include_usage: false }, content: '"stream_options":1' }],
      tools: { stream_options: 2 },
      note: "stream_options",
    });
    expect(valueText(text, "stream_options")).toBeNull();
    expect(valueText(`{"stream_options":3,${text.slice(1)}`, "stream_options")).toBe("3");
  });

  it("reads keys as JSON.parse does (escapes), and finds every copy of a repeated key", () => {
    expect(valueText('{"stream\\u005foptions":{"a":1}}', "stream_options")).toBe('{"a":1}');
    const dup = '{"stream_options":1,"x":{"stream_options":9},"stream_options":2}';
    expect(valueTexts(dup, "stream_options")).toEqual(["1", "2"]);
    const body = Buffer.from(dup);
    expect(replaceSpans(body, topLevelValueSpans(body, "stream_options"), "true").toString()).toBe(
      '{"stream_options":true,"x":{"stream_options":9},"stream_options":true}',
    );
  });

  it("a replaced or prepended member leaves every other byte as it was", () => {
    const text = ' {"seed": 12345678901234567890, "stream_options": null , "stream": true}';
    const body = Buffer.from(text);
    const out = replaceSpans(body, topLevelValueSpans(body, "stream_options"), '{"include_usage":true}');
    expect(out.toString()).toBe(
      ' {"seed": 12345678901234567890, "stream_options": {"include_usage":true} , "stream": true}',
    );
    expect(prependMember(Buffer.from(' {"a": 1}'), "k", "true").toString()).toBe(' {"k":true,"a": 1}');
  });
});
