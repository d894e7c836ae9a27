// The gateway's own polls of background responses (TOLLGATE_BACKGROUND_FOLLOW_MS): a response no client
// polls (an app told of its end by webhooks, or not at all) is still billed, once, for its submission, and
// its budget hold becomes its spend; an app that polls costs no extra upstream calls. A gateway of its own
// per case: a gateway records a response once, under the id its fixture gives it.
import { setTimeout as sleep } from "node:timers/promises";
import { extractFromResponse } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { budgetedGateway, expectExactUsageAndCost } from "./helpers.js";
import { FX, fixture, type MockUpstream, startMockUpstream } from "./mock-upstream.js";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

/** A gateway that follows background responses after `followMs`, with a $10/day budget on feature `bg`. */
async function followingGateway(followMs: number) {
  const gateway = await budgetedGateway(mock.url, "bg", { backgroundFollowMs: followMs });
  /** The upstream's GETs of response `id` in this case (polls, the gateway's or a client's). */
  const polls = (id: string, mockCase: string) =>
    mock.requests.filter(
      (r) => r.method === "GET" && r.path === `/v1/responses/${id}` && r.headers["x-mock-case"] === mockCase,
    );
  /** Once recorded (and a moment for any second record): its one llm record, its hold now the spend. */
  const billedOnce = async (id: string) => {
    await vi.waitFor(
      async () => expect((await gateway.records(id)).some((r) => r.kind === "llm")).toBe(true),
      { timeout: 5_000, interval: 20 },
    );
    await sleep(300);
    const llm = (await gateway.records(id)).filter((r) => r.kind === "llm");
    expect(llm).toHaveLength(1);
    expect(await gateway.budget()).toMatchObject({
      spend_nanousd: String(llm[0]!.cost_nanousd),
      reserved_usd: "0.00",
    });
    return llm[0]!;
  };
  return { ...gateway, polls, billedOnce };
}

describe("gateway: background responses no client polls", () => {
  it("are polled by the gateway with the submission's own headers, billed once for it, the hold now the spend", async () => {
    const { gw, openai, budget, polls, billedOnce } = await followingGateway(50);
    try {
      const headers = { "x-mock-case": "follow-1", "x-tollgate-feature": "bg", "x-tollgate-user-id": "u-9" };
      const submitted = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", background: true },
        { headers },
      );
      expect(submitted.status).toBe("queued");
      expect(Number((await budget()).reserved_usd)).toBeGreaterThan(0); // held while it runs
      const llm = await billedOnce(submitted.id);
      expectExactUsageAndCost(
        llm,
        extractFromResponse("openai.responses", JSON.parse(fixture(FX.responsesReasoning))),
        "openai",
      );
      expect(llm).toMatchObject({ feature: "bg", user_id: "u-9", status: "ok" });
      // The mock's response runs through one poll: the gateway asked twice, then stopped. Each poll went
      // with the client's key, without the submission's body headers or the gateway's own.
      const seen = polls(submitted.id, "follow-1");
      expect(seen).toHaveLength(2);
      for (const p of seen) {
        expect(p.headers.authorization).toBe("Bearer sk-test");
        expect(Object.keys(p.headers).filter((h) => /^(content-|x-tollgate-)/.test(h))).toEqual([]);
      }
      expect(
        (await (await fetch(`${gw.url}/metrics`)).text()).match(
          /tollgate_gateway_background_polls_total\{status="200"\} (\d+)/,
        )?.[1],
      ).toBe("2");
    } finally {
      await gw.stop();
    }
  });

  it("a submission's query (Azure's api-version) goes with the gateway's polls, without stream", async () => {
    const { gw, openai, polls, billedOnce } = await followingGateway(50);
    try {
      const submitted = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", background: true },
        {
          headers: { "x-mock-case": "follow-query", "x-tollgate-feature": "bg" },
          query: { "api-version": "preview" },
        },
      );
      await billedOnce(submitted.id);
      const asked = mock.requests.filter(
        (r) => r.method === "GET" && r.headers["x-mock-case"] === "follow-query",
      );
      expect(asked.map((r) => r.path)).toEqual([
        `/v1/responses/${submitted.id}?api-version=preview`,
        `/v1/responses/${submitted.id}?api-version=preview`,
      ]);
      expect(polls(submitted.id, "follow-query")).toEqual([]); // none without it
    } finally {
      await gw.stop();
    }
  });

  it("a background stream cut short is followed too: billed once from the gateway's poll", async () => {
    const { gw, openai, polls, billedOnce } = await followingGateway(50);
    try {
      const stream = await openai.responses.create(
        { model: "gpt-5", input: "go", stream: true, background: true },
        {
          headers: {
            "x-mock-case": "follow-cut",
            "x-mock-fixture": "openai/responses.stream.gpt-5.reasoning.sse",
            "x-mock-chunk-delay-ms": "100",
            "x-tollgate-feature": "bg",
          },
        },
      );
      const first = (await stream[Symbol.asyncIterator]().next()).value as { response: { id: string } };
      const id = first.response.id;
      stream.controller.abort(); // the client leaves; the response runs on upstream
      expect(await billedOnce(id)).toMatchObject({ feature: "bg", output_tokens: 469 });
      expect(polls(id, "follow-cut")).toHaveLength(1);
    } finally {
      await gw.stop();
    }
  });

  it("an app that polls itself: the gateway makes no poll of its own", async () => {
    // Turns of 1.2 s, a poll every 0.7 s: half a second to spare for a busy box's slow poll.
    const { gw, openai, records, polls } = await followingGateway(1_200);
    try {
      const opts = { headers: { "x-mock-case": "follow-client", "x-tollgate-feature": "bg" } };
      const submitted = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", background: true },
        opts,
      );
      await sleep(700);
      expect((await openai.responses.retrieve(submitted.id, undefined, opts)).status).toBe("in_progress");
      await sleep(700); // past the gateway's first turn had the client not polled
      expect((await openai.responses.retrieve(submitted.id, undefined, opts)).status).toBe("completed");
      await sleep(1_000);
      expect(polls(submitted.id, "follow-client")).toHaveLength(2); // the client's two
      expect((await records(submitted.id)).filter((r) => r.kind === "llm")).toHaveLength(1);
    } finally {
      await gw.stop();
    }
  });

  it("TOLLGATE_BACKGROUND_FOLLOW_MS=0: the gateway never polls (the hold waits for a client, as before)", async () => {
    const { gw, openai, budget, records, polls } = await followingGateway(0);
    try {
      const submitted = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", background: true },
        { headers: { "x-mock-case": "follow-off", "x-tollgate-feature": "bg" } },
      );
      await sleep(500);
      expect(polls(submitted.id, "follow-off")).toEqual([]);
      expect((await records(submitted.id)).filter((r) => r.kind === "llm")).toEqual([]);
      expect(Number((await budget()).reserved_usd)).toBeGreaterThan(0);
    } finally {
      await gw.stop();
    }
  });
});
