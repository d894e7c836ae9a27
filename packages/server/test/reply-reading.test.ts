import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { SKIM_OVER } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { countToolCalls, replyJson } from "../src/gateway/reply-reading.js";

const fixture = (path: string) =>
  JSON.parse(readFileSync(new URL(`../../../../shared/fixtures/providers/${path}`, import.meta.url), "utf8"));

describe("countToolCalls: the tool calls a model asked for in one reply", () => {
  it("a real Responses reply with a built-in tool's call (code interpreter) counts it", () => {
    const reply = fixture("openai/responses.gpt-5.cached-reasoning.json");
    const calls = reply.output.filter((o: { type: string }) => o.type.endsWith("_call")).length;
    expect(calls).toBeGreaterThan(0);
    expect(countToolCalls(reply)).toBe(calls);
  });

  it("every Responses *_call item counts, and nothing else", () => {
    const types = [
      "function_call",
      "custom_tool_call",
      "computer_call",
      "local_shell_call",
      "web_search_call",
    ];
    const output = [...types.map((type) => ({ type })), { type: "message" }, { type: "reasoning" }];
    expect(countToolCalls({ output })).toBe(types.length);
  });

  it("Anthropic tool_use and server_tool_use blocks; chat tool_calls across choices", () => {
    expect(
      countToolCalls({ content: [{ type: "text" }, { type: "tool_use" }, { type: "server_tool_use" }] }),
    ).toBe(2);
    expect(
      countToolCalls({ choices: [{ message: { tool_calls: [{}, {}] } }, { message: { tool_calls: [{}] } }] }),
    ).toBe(3);
    expect(countToolCalls({ choices: [{ message: { content: "hi" } }] })).toBe(0);
  });
});

describe("replyJson: a reply's JSON for reading usage", () => {
  const image = "QUJD".repeat(100_000);
  const reply = {
    created: 1,
    data: [{ b64_json: image, revised_prompt: "a fox" }],
    usage: { total_tokens: 9 },
  };
  const body = Buffer.from(JSON.stringify(reply));

  it("a large one is parsed without its payloads; everything else as sent", () => {
    expect(body.length).toBeGreaterThan(SKIM_OVER);
    expect(replyJson(body, null)).toEqual({ ...reply, data: [{ b64_json: "", revised_prompt: "a fox" }] });
  });

  it("compressed, it is decoded first; a small one is parsed whole", () => {
    expect(replyJson(gzipSync(body), "gzip")).toEqual(replyJson(body, null));
    const small = { data: [{ b64_json: "QUJD" }] };
    expect(replyJson(Buffer.from(JSON.stringify(small)), null)).toEqual(small);
  });

  it("not a JSON object (or not the encoding it says): null", () => {
    expect(replyJson(Buffer.from(`[${JSON.stringify(reply)}]`), null)).toBeNull();
    expect(replyJson(body, "gzip")).toBeNull();
    expect(replyJson(Buffer.from(`${JSON.stringify(reply).slice(0, -2)}`), null)).toBeNull();
  });
});
