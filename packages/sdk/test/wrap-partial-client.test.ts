// A client object with only some of the resources wrapOpenAI knows (an app's own client-like object, a
// test double, an older SDK without the Responses API): what it has is wrapped, what it lacks is skipped.

import type { CallRecordInput } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { wrapOpenAI } from "../src/index.js";

describe("wrapOpenAI on a client without some resources", () => {
  it("no `responses`: wrapped (not a TypeError), its chat calls recorded once", async () => {
    const sent: CallRecordInput[] = [];
    const completion = {
      id: "chatcmpl-partial",
      object: "chat.completion",
      model: "gpt-4.1-nano",
      choices: [{ index: 0, message: { role: "assistant", content: "Hi" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
    };
    const client = { chat: { completions: { create: async (_body: unknown) => completion } } };
    const wrapped = wrapOpenAI(client, { sink: (r) => void sent.push(r) });
    expect(wrapped).toBe(client);
    await wrapped.chat.completions.create({ model: "gpt-4.1-nano", messages: [] });
    await expect.poll(() => sent.length).toBe(1);
    expect(sent[0]).toMatchObject({ api: "openai.chat", model: "gpt-4.1-nano", status: "ok" });
  });
});
