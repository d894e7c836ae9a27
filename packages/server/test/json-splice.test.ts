import { describe, expect, it } from "vitest";
import { prependMember, replaceSpan, topLevelValueSpan } from "../src/gateway/json-splice.js";

/** The text of top-level member `key`'s value, as found in `text`. */
function valueText(text: string, key: string): string | null {
  const body = Buffer.from(text);
  const span = topLevelValueSpan(body, key);
  return span && body.toString("utf8", span.start, span.end);
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

  it("reads keys as JSON.parse does (escapes), and takes the last of a repeated key, as it does", () => {
    expect(valueText('{"stream\\u005foptions":{"a":1}}', "stream_options")).toBe('{"a":1}');
    const dup = '{"stream_options":1,"x":{"stream_options":9},"stream_options":2}';
    expect(valueText(dup, "stream_options")).toBe("2");
    expect(JSON.parse(dup).stream_options).toBe(2);
  });

  it("a replaced or prepended member leaves every other byte as it was", () => {
    const text = ' {"seed": 12345678901234567890, "stream_options": null , "stream": true}';
    const body = Buffer.from(text);
    const out = replaceSpan(body, topLevelValueSpan(body, "stream_options")!, '{"include_usage":true}');
    expect(out.toString()).toBe(
      ' {"seed": 12345678901234567890, "stream_options": {"include_usage":true} , "stream": true}',
    );
    expect(prependMember(Buffer.from(' {"a": 1}'), "k", "true").toString()).toBe(' {"k":true,"a": 1}');
  });
});
