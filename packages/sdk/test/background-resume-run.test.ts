// A background stream cut short in an agent run and resumed inside the run's own `run.llm(…)`: run.llm
// reads no usage from a stream, so the response's cost is counted from its final event, once. A file of
// its own: the SDK records a response once per process, under the id its fixture gives it.

import { extractFromSse } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { collect } from "../../server/test/helpers.js";
import { fixture } from "../../server/test/mock-upstream.js";
import { agentRun } from "../src/index.js";
import { clientsAgainstMock, cutBackgroundStream } from "./background-helpers.js";

const REL = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
const CASE = { "x-mock-case": "sdk-resume-run", "x-mock-fixture": REL };

const clients = clientsAgainstMock();
const { sent } = clients;

/** The run's tokens are the fixture's response's (input, cache reads and output). */
function expectRunTokensOf(rel: string, totalTokens: number): void {
  const usage = extractFromSse("openai.responses", fixture(rel))!.usage;
  expect(totalTokens).toBe(usage.input_uncached_tokens + usage.cache_read_tokens + usage.output_tokens);
}

describe("SDK: a background stream resumed inside run.llm", () => {
  it("counts the response's tokens and cost to the run once, and the run one LLM call", async () => {
    const openai = clients.wrapped();
    // A poll through a wrapped client: no warning that run.llm held nothing (a poll need not).
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
      const seen = await cutBackgroundStream(openai, "gpt-5.2", CASE);
      const query = { stream: true as const, starting_after: seen.at(-1)!.sequence_number };
      await run.llm("openai.responses", async () =>
        collect(await openai.responses.retrieve(seen[0]!.response!.id, query, { headers: CASE })),
      );
      const llm = sent.filter((r) => r.kind === "llm");
      expect(llm).toHaveLength(1);
      expectRunTokensOf(REL, run.usage.total_tokens);
      expect(run.usage.cost_nanousd).toBeGreaterThan(0n);
      expect(run.usage.llm_calls).toBe(1); // the submission: run.llm's resumption is a poll, no LLM call
    });
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    process.off("warning", onWarning);
    expect(warnings).toEqual([]);
  });

  it("submitted by another client (not seen here): resumed inside run.llm, the run counts its cost all the same", async () => {
    const other = "openai/responses.stream.gpt-5.reasoning.sse"; // a fixture of its own: another response
    const mockCase = { "x-mock-case": "sdk-resume-run-elsewhere", "x-mock-fixture": other };
    const openai = clients.wrapped();
    const seen = await cutBackgroundStream(clients.plain(), "gpt-5", mockCase);
    await agentRun({ type: "poller", limits: { max_cost_usd: "100" } }, async (run) => {
      const query = { stream: true as const, starting_after: seen.at(-1)!.sequence_number };
      await run.llm("openai.responses", async () =>
        collect(await openai.responses.retrieve(seen[0]!.response!.id, query, { headers: mockCase })),
      );
      expectRunTokensOf(other, run.usage.total_tokens);
      expect(run.usage.cost_nanousd).toBeGreaterThan(0n);
    });
  });
});
