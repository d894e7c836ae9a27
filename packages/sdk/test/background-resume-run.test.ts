// A background stream cut short in an agent run and resumed inside the run's own `run.llm(…)`: run.llm
// reads no usage from a stream, so the response's cost is counted from its final event, once. A file of
// its own: the SDK records a response once per process, under the id its fixture gives it.

import { type CallRecordInput, extractFromSse } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect } from "../../server/test/helpers.js";
import { fixture, type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { agentRun, wrapOpenAI } from "../src/index.js";

const REL = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
const CASE = { "x-mock-case": "sdk-resume-run", "x-mock-fixture": REL };

let mock: MockUpstream;
let openai: OpenAI;
const sent: CallRecordInput[] = [];

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
  const opts = { apiKey: "sk-test", maxRetries: 0, baseURL: `${mock.url}/v1` };
  openai = wrapOpenAI(new OpenAI(opts), { sink: (r) => sent.push(r) });
});

afterAll(async () => {
  await mock?.close();
});

type StreamEvent = { type: string; sequence_number: number; response?: { id: string } };

describe("SDK: a background stream resumed inside run.llm", () => {
  it("counts the response's tokens and cost to the run once, and the run one LLM call", async () => {
    await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
      const seen: StreamEvent[] = [];
      const stream = await openai.responses.create(
        { model: "gpt-5.2", input: "go", stream: true, background: true },
        { headers: { ...CASE, "x-mock-scenario": "reset-mid-stream" } },
      );
      await expect(
        (async () => {
          for await (const ev of stream) seen.push(ev as StreamEvent);
        })(),
      ).rejects.toThrow();
      const query = { stream: true as const, starting_after: seen.at(-1)!.sequence_number };
      await run.llm("openai.responses", async () =>
        collect(await openai.responses.retrieve(seen[0]!.response!.id, query, { headers: CASE })),
      );
      const llm = sent.filter((r) => r.kind === "llm");
      expect(llm).toHaveLength(1);
      const usage = extractFromSse("openai.responses", fixture(REL))!.usage;
      expect(run.usage.total_tokens).toBe(
        usage.input_uncached_tokens + usage.cache_read_tokens + usage.output_tokens,
      );
      expect(run.usage.cost_nanousd).toBeGreaterThan(0n);
      expect(run.usage.llm_calls).toBe(2); // the submission, and run.llm's
    });
  });

  it("submitted by another client (not seen here): resumed inside run.llm, the run counts its cost all the same", async () => {
    const other = "openai/responses.stream.gpt-5.reasoning.sse"; // a fixture of its own: another response
    const mockCase = { "x-mock-case": "sdk-resume-run-elsewhere", "x-mock-fixture": other };
    const plain = new OpenAI({ apiKey: "sk-test", maxRetries: 0, baseURL: `${mock.url}/v1` });
    const seen: StreamEvent[] = [];
    const stream = await plain.responses.create(
      { model: "gpt-5", input: "go", stream: true, background: true },
      { headers: { ...mockCase, "x-mock-scenario": "reset-mid-stream" } },
    );
    await expect(
      (async () => {
        for await (const ev of stream) seen.push(ev as StreamEvent);
      })(),
    ).rejects.toThrow();
    await agentRun({ type: "poller", limits: { max_cost_usd: "100" } }, async (run) => {
      const query = { stream: true as const, starting_after: seen.at(-1)!.sequence_number };
      await run.llm("openai.responses", async () =>
        collect(await openai.responses.retrieve(seen[0]!.response!.id, query, { headers: mockCase })),
      );
      const usage = extractFromSse("openai.responses", fixture(other))!.usage;
      expect(run.usage.total_tokens).toBe(
        usage.input_uncached_tokens + usage.cache_read_tokens + usage.output_tokens,
      );
      expect(run.usage.cost_nanousd).toBeGreaterThan(0n);
    });
  });
});
