// Background responses met from two sides at once: a stream still running while a resumption or a poll
// finds its response finished, a response that finishes without usage, a resumed stream the upstream
// compressed. Billed once, for the submission, and no budget hold is left behind. A gateway of its own per
// case: a gateway records a response once, under the id its fixture gives it.
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { budgetedGateway, collect } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

const FIXTURE = "openai/responses.stream.gpt-5.reasoning.sse";

/** A gateway with a $10/day budget on feature `resumable`, its client, and what the budget says. */
async function gatewayWithBudget() {
  const { gw, openai, budget, records } = await budgetedGateway(mock.url, "resumable");
  /** The response was billed once, for its submission (feature `resumable`), its hold now its spend. */
  const expectBilledOnce = async (id: string) => {
    const llm = (await records(id)).filter((r) => r.kind === "llm");
    expect(llm).toHaveLength(1);
    expect(llm[0]).toMatchObject({ feature: "resumable", output_tokens: 469 });
    expect(await budget()).toMatchObject({
      spend_nanousd: String(llm[0]!.cost_nanousd),
      reserved_usd: "0.00",
    });
  };
  return { gw, openai, budget, records, expectBilledOnce };
}

type StreamEvent = { type: string; sequence_number: number; response?: { id: string } };

describe("gateway: a background stream still running when its response is found finished elsewhere", () => {
  for (const [how, end] of [
    ["a resumption", "finishes"],
    ["a resumption", "is cut"],
    ["a poll", "is cut"],
  ] as const)
    it(`by ${how}, and the stream then ${end}: billed once, for the submission; its hold becomes the spend`, async () => {
      const { gw, openai, budget, records, expectBilledOnce } = await gatewayWithBudget();
      try {
        const mockCase = { "x-mock-case": `running-${how}-${end}`, "x-mock-fixture": FIXTURE };
        const stream = await openai.responses.create(
          { model: "gpt-5", input: "go", stream: true, background: true },
          { headers: { ...mockCase, "x-mock-chunk-delay-ms": "100", "x-tollgate-feature": "resumable" } },
        );
        const events = stream[Symbol.asyncIterator]();
        const first = (await events.next()).value as StreamEvent;
        const id = first.response!.id;
        // Found finished through another connection, under another feature.
        const elsewhere = { headers: { ...mockCase, "x-tollgate-feature": "poller" } };
        if (how === "a poll") {
          await openai.responses.retrieve(id, undefined, elsewhere); // it runs on upstream: done at once
        } else {
          const rest = await collect(
            await openai.responses.retrieve(
              id,
              { stream: true, starting_after: first.sequence_number },
              elsewhere,
            ),
          );
          expect(rest.at(-1)).toMatchObject({ type: "response.completed" });
        }
        if (end === "finishes") while (!(await events.next()).done) {}
        else await events.return?.();
        await sleep(300);
        await expectBilledOnce(id);
        // Polled again later: nothing more.
        await openai.responses.retrieve(id, undefined, { headers: mockCase });
        await sleep(100);
        expect((await records(id)).filter((r) => r.kind === "llm")).toHaveLength(1);
        expect((await budget()).reserved_usd).toBe("0.00");
      } finally {
        await gw.stop();
      }
    });
});

describe("gateway: a background response that finishes without usage", () => {
  for (const how of ["a resumed stream", "a poll"] as const)
    it(`found failed by ${how}: nothing is billed and the submission's hold is let go`, async () => {
      const { gw, openai, budget, records } = await gatewayWithBudget();
      try {
        const headers = { "x-mock-case": `failed-${how}`, "x-tollgate-feature": "resumable" };
        const submitted = await openai.responses.create(
          { model: "gpt-5", input: "go", background: true, max_output_tokens: 1000 },
          { headers: { ...headers, "x-mock-scenario": "fails-in-background" } },
        );
        expect(Number((await budget()).reserved_usd)).toBeGreaterThan(0); // held while it runs
        if (how === "a poll") {
          await openai.responses.retrieve(submitted.id, undefined, { headers }); // in_progress
          expect(await openai.responses.retrieve(submitted.id, undefined, { headers })).toMatchObject({
            status: "failed",
            usage: null,
          });
        } else {
          const events = await collect(
            await openai.responses.retrieve(submitted.id, { stream: true, starting_after: 1 }, { headers }),
          );
          expect(events).toMatchObject([{ type: "response.failed" }]);
        }
        await sleep(200);
        expect(await budget()).toMatchObject({ spend_nanousd: "0", reserved_usd: "0.00" });
        expect((await records(submitted.id)).filter((r) => r.kind === "llm")).toHaveLength(0);
      } finally {
        await gw.stop();
      }
    });
});

describe("gateway: a resumed stream the upstream compressed though nobody asked", () => {
  it("reaches the client as the upstream sent it, and its response is billed", async () => {
    const { gw, openai, expectBilledOnce } = await gatewayWithBudget();
    try {
      const mockCase = { "x-mock-case": "gzip", "x-mock-fixture": FIXTURE };
      const seen: StreamEvent[] = [];
      const stream = await openai.responses.create(
        { model: "gpt-5", input: "go", stream: true, background: true },
        {
          headers: { ...mockCase, "x-mock-scenario": "reset-mid-stream", "x-tollgate-feature": "resumable" },
        },
      );
      await expect(
        (async () => {
          for await (const ev of stream) seen.push(ev as StreamEvent);
        })(),
      ).rejects.toThrow();
      const id = seen[0]!.response!.id;
      const query = { stream: true as const, starting_after: seen.at(-1)!.sequence_number };
      const gzipped = { headers: { ...mockCase, "x-mock-encoding": "gzip" } };
      const rest = await collect(await openai.responses.retrieve(id, query, gzipped));
      const plain = new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 });
      expect(rest).toEqual(await collect(await plain.responses.retrieve(id, query, gzipped)));
      await sleep(200);
      await expectBilledOnce(id);
    } finally {
      await gw.stop();
    }
  });
});
