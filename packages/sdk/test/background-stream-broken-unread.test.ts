// A background stream (`background: true, stream: true`) that breaks before its first event, while nothing
// reads it yet: its first event is read as it comes (to name the response should the app abort it unread),
// so the break is seen then, and the SDK aborts the stream itself. That abort is no abort of the app's: the
// call is recorded as broken upstream, as its reader would find it (the app reads the same error after).
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { CallRecordInput } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { agentRun, wrapOpenAI } from "../src/index.js";

/** An upstream that answers a stream's headers, then drops the connection before its first event. */
const upstream = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { "content-type": "text/event-stream", "x-request-id": "req_broken_unread" });
  res.flushHeaders();
  setTimeout(() => res.socket?.destroy(), 30);
});
const sent: CallRecordInput[] = [];
let openai: OpenAI;
beforeAll(async () => {
  upstream.listen(0, "127.0.0.1");
  await once(upstream, "listening");
  const baseURL = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
  openai = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL, maxRetries: 0 }), {
    sink: (r) => sent.push(r),
  });
});
afterAll(() => new Promise<void>((r) => upstream.close(() => r())));

describe("SDK: a background stream that broke before its first event, nothing reading it yet", () => {
  it("is recorded as broken upstream (not as left by the app), once, its hold gone", async () => {
    await agentRun({ type: "researcher", limits: { max_cost_usd: "10" } }, async (run) => {
      const stream = await openai.responses.create({
        model: "gpt-5.2",
        input: "Tallest mountain in Alberta?",
        stream: true,
        background: true,
      });
      await sleep(150); // it broke meanwhile: nothing read it
      await expect(
        (async () => {
          for await (const _ of stream);
        })(),
      ).rejects.toThrow();
      await vi.waitFor(() => expect(sent.length).toBe(1));
      expect(sent[0]).toMatchObject({
        kind: "llm",
        status: "error",
        error_type: "upstream_stream_broken",
        request_id: "req_broken_unread",
        agent_run_id: run.id,
      });
      expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
    });
  });
});
