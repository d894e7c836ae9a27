// A background stream read to its end whose final event carries no usage, or usage no reader can price: as
// at the gateway, it is recorded as its submission (kind=other), and the response is left to the poll that
// reads its usage (the app's `responses.retrieve`, or the client's own), whose record, under the response's
// event id, is its one llm record, counted once to its run: at its exact cost, or, its usage unreadable in
// the response itself (as OpenAI's final event carries the response a poll gets), at the worst case the
// stream held. The stream used to write an llm record of its own too (usage_unreadable): the store counted
// two LLM calls for the one response (the agent-runs rollup, a run rebuilt from the store), an unpriced one
// besides. Each case in an SDK of its own (the SDK records a response once per process, under the id its
// fixture gives it), and a store of its own (the records of a response take its id).
import { setTimeout as sleep } from "node:timers/promises";
import type { CallRecordInput } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { collect, createKey, openTestRuntime, postEvents } from "../../server/test/helpers.js";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { responseEventId } from "../src/ids.js";
import { cutBackgroundStream, fixtureResponseCost, LATER } from "./background-helpers.js";

const REL = "openai/responses.stream.gpt-5.reasoning.sse";
const request = { model: "gpt-5", input: "Research caching", stream: true, background: true } as const;

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

/** A fresh SDK (no response recorded yet), a client it wraps (following after `followBackgroundMs`), and what it sends. */
async function freshSdk(followBackgroundMs: number) {
  vi.resetModules();
  const sdk = await import("../src/index.js");
  const sent: CallRecordInput[] = [];
  const openai = new OpenAI({ apiKey: "sk-test", maxRetries: 0, baseURL: `${mock.url}/v1` });
  const client = sdk.wrapOpenAI(openai, { sink: (r) => sent.push(r), followBackgroundMs });
  return { agentRun: sdk.agentRun, client, sent };
}

/** The run as a store that took `records` counts it (a run rebuilt from the store, the agent-runs rollup). */
async function storedRun(records: CallRecordInput[], runId: string) {
  const rt = await openTestRuntime();
  try {
    const key = (await createKey(rt.app, rt.rootToken, "default", "ingest")).json.key;
    expect((await postEvents(rt.app, key, records)).status).toBe(200);
    return (await rt.store.runUsage("default", 0, runId))[0];
  } finally {
    await rt.close();
  }
}

/**
 * Response `id`'s one llm record among `sent`, of a cost unknown, its run charged `held` (the worst case it
 * held), nothing held any more, and so counted by a store that took the records.
 */
async function recordedAtItsHold(
  sent: CallRecordInput[],
  id: string,
  run: { id: string; held: { cost_nanousd: bigint }; usage: object },
  held: bigint,
) {
  expect(sent.filter((r) => r.kind === "llm" && r.request_id === id)).toEqual([
    expect.objectContaining({ event_id: responseEventId(id), status: "ok", error_type: "usage_unreadable" }),
  ]);
  expect(run.held.cost_nanousd).toBe(0n);
  expect(run.usage).toMatchObject({ cost_nanousd: held, llm_calls: 1 });
  expect(await storedRun(sent, run.id)).toMatchObject({ llm_calls: 1 });
}

const SCENARIOS = ["usage-unreadable-at-end", "no-usage-at-end", "usage-unreadable-throughout"] as const;
const CASES = SCENARIOS.flatMap((scenario) =>
  (["the app", "the client itself"] as const).map((polledBy) => ({ scenario, polledBy })),
);

describe("SDK: a background stream read to its end, its usage unreadable, then polled", () => {
  it.each(CASES)(
    "$scenario, polled by $polledBy: the poll's record is the response's one llm record, counted once",
    async ({ scenario, polledBy }) => {
      const own = polledBy === "the client itself";
      const { agentRun, client, sent } = await freshSdk(own ? 50 : LATER);
      const headers = {
        "x-mock-case": `sdk-stream-unreadable-once-${scenario}-${own}`,
        "x-mock-fixture": REL,
        "x-mock-scenario": scenario,
      };
      const readable = scenario !== "usage-unreadable-throughout";
      await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
        const stream = await client.responses.create(request, { headers });
        let id = "";
        for await (const ev of stream) if (ev.type === "response.created") id = ev.response.id;
        // Left to the poll: its submission recorded, its hold kept.
        const ofResponse = (kind: string) => sent.filter((r) => r.kind === kind && r.request_id === id);
        expect(ofResponse("other")).toEqual([expect.objectContaining({ error_type: "usage_unreadable" })]);
        expect(ofResponse("llm")).toEqual([]);
        const held = run.held.cost_nanousd;
        expect(held).toBeGreaterThan(0n);

        if (own)
          await vi.waitFor(() => expect(ofResponse("llm")).toHaveLength(1), { timeout: 5_000, interval: 20 });
        else
          for (let i = 0; i < 2; i++)
            expect((await client.responses.retrieve(id, {}, { headers })).status).toBe("completed");
        await sleep(200); // a second record, were there one, would be in by now

        const cost = readable ? fixtureResponseCost(REL) : held;
        expect(ofResponse("llm")).toEqual([
          expect.objectContaining({
            event_id: responseEventId(id),
            status: "ok",
            error_type: readable ? null : "usage_unreadable",
            agent_run_id: run.id,
            ...(readable && { output_tokens: 469 }),
          }),
        ]);
        expect(run.held.cost_nanousd).toBe(0n);
        expect(run.usage).toMatchObject({ cost_nanousd: cost, llm_calls: 1 });
        expect(await storedRun(sent, run.id)).toMatchObject({
          llm_calls: 1,
          ...(readable && { cost_nanousd: cost }),
        });
      });
    },
  );
});

// No poll may come: recorded at its end, its run is charged the worst case it held, not left to lapse at $0.
describe("SDK: a background stream read to its end, its usage unreadable, by a client that follows none", () => {
  it.each(SCENARIOS)(
    "%s: the stream's record is the response's one llm record, at the worst case held",
    async (scenario) => {
      const { agentRun, client, sent } = await freshSdk(0);
      const headers = {
        "x-mock-case": `sdk-stream-unreadable-unfollowed-${scenario}`,
        "x-mock-fixture": REL,
        "x-mock-scenario": scenario,
      };
      await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
        const stream = await client.responses.create(request, { headers });
        let id = "";
        let held = 0n;
        for await (const ev of stream) {
          if (ev.type === "response.created") id = ev.response.id;
          held = run.held.cost_nanousd;
        }
        expect(held).toBeGreaterThan(0n);
        await recordedAtItsHold(sent, id, run, held);
      });
    },
  );

  it.each(SCENARIOS)(
    "%s, cut short and resumed to its end: recorded there, at the worst case held",
    async (scenario) => {
      const { agentRun, client, sent } = await freshSdk(0);
      const headers = {
        "x-mock-case": `sdk-resumed-unreadable-unfollowed-${scenario}`,
        "x-mock-fixture": REL,
      };
      await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
        const seen = await cutBackgroundStream(client, "gpt-5", headers);
        const id = seen[0]!.response!.id;
        const held = run.held.cost_nanousd;
        expect(held).toBeGreaterThan(0n);
        await collect(
          await client.responses.retrieve(
            id,
            { stream: true, starting_after: seen.at(-1)!.sequence_number },
            { headers: { ...headers, "x-mock-scenario": scenario } },
          ),
        );
        await recordedAtItsHold(sent, id, run, held);
      });
    },
  );
});
