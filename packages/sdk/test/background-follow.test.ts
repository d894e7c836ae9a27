// A wrapped client's own polls of its background responses (`followBackgroundMs`): one the app never
// polls (it learns of the end from webhooks) is still recorded, once, for its submission's scope and run;
// an app that polls causes no extra poll. A file of its own: the SDK records a response once per process.
import { setTimeout as sleep } from "node:timers/promises";
import { type CallRecordInput, extractFromResponse, PricingEngine, USAGE_FIELDS } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { FX, fixture, type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { agentRun, withAttribution, wrapOpenAI } from "../src/index.js";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 1 });
});
afterAll(async () => {
  await mock?.close();
});

/** A client wrapped with `followBackgroundMs`, the records it sends, and the mock's GETs of a response. */
function followingClient(followBackgroundMs?: number) {
  const sent: CallRecordInput[] = [];
  const opts = { apiKey: "sk-test", maxRetries: 0, baseURL: `${mock.url}/v1` };
  const client = wrapOpenAI(new OpenAI(opts), {
    sink: (r) => sent.push(r),
    ...(followBackgroundMs === undefined ? {} : { followBackgroundMs }),
  });
  /** The GETs of response `id` in one case (the app's, and the client's own with the submission's headers). */
  const polls = (id: string, mockCase: string) =>
    mock.requests.filter(
      (r) => r.method === "GET" && r.path === `/v1/responses/${id}` && r.headers["x-mock-case"] === mockCase,
    );
  const llm = (id: string) => sent.filter((r) => r.kind === "llm" && r.request_id === id);
  return { client, sent, polls, llm };
}

// A fixture per case: the SDK records a response once per process, under the id its fixture gives it.
const FIXTURES = {
  followed: FX.responsesReasoning,
  polledByApp: "openai/responses.gpt-4o.cached.json",
  off: "openai/responses.gpt-5.6-sol.cache-read.json",
};
const submit = (client: OpenAI, mockCase: string, fixturePath: string) =>
  client.responses.create(
    { model: "gpt-5", input: "Research caching", background: true },
    { headers: { "x-mock-case": mockCase, "x-mock-fixture": fixturePath } },
  );

describe("SDK: background responses the app never polls", () => {
  it("are polled by the client itself and recorded once, for the submission's scope and agent run", async () => {
    const { client, polls, llm } = followingClient(50);
    let runUsage: { llm_calls: number; cost_nanousd: bigint } | undefined;
    const submitted = await agentRun({ type: "researcher", limits: { max_llm_calls: 5 } }, async (run) => {
      const s = await withAttribution({ feature: "bg", userId: "u-9" }, () =>
        submit(client, "sdk-follow-1", FIXTURES.followed),
      );
      await vi.waitFor(() => expect(llm(s.id)).toHaveLength(1), { timeout: 5_000, interval: 20 });
      runUsage = { llm_calls: run.usage.llm_calls, cost_nanousd: run.usage.cost_nanousd };
      return s;
    });
    expect(submitted.status).toBe("queued");
    await sleep(300); // time for a second record or poll, were there to be one
    const [rec] = llm(submitted.id);
    expect(llm(submitted.id)).toHaveLength(1);
    expect(rec).toMatchObject({ feature: "bg", user_id: "u-9", status: "ok", agent_type: "researcher" });
    const expected = extractFromResponse("openai.responses", JSON.parse(fixture(FIXTURES.followed)));
    for (const f of USAGE_FIELDS) expect(rec![f] ?? 0, f).toBe(expected.usage[f]);
    // The mock's response runs through one poll: the client asked twice, then stopped.
    expect(polls(submitted.id, "sdk-follow-1")).toHaveLength(2);
    // The run counted the response's usage once, with its submission as its one LLM call.
    const price = new PricingEngine().price({
      provider: "openai",
      model: expected.model!,
      usage: expected.usage,
      at: Date.now(),
    });
    expect(runUsage).toEqual({ llm_calls: 1, cost_nanousd: price.cost.total_nanousd });
  });

  it("an app that polls itself causes no poll of the client's own", async () => {
    const { client, polls, llm } = followingClient(400);
    const submitted = await submit(client, "sdk-follow-2", FIXTURES.polledByApp);
    for (let i = 0; i < 2; i++) {
      await sleep(250);
      await client.responses.retrieve(submitted.id, {}, { headers: { "x-mock-case": "sdk-follow-2" } });
    }
    expect(llm(submitted.id)).toHaveLength(1);
    await sleep(600); // past the client's own first poll, had the app's not found it finished
    expect(polls(submitted.id, "sdk-follow-2")).toHaveLength(2);
  });

  it("never polls with followBackgroundMs: 0", async () => {
    const { client, polls, llm } = followingClient(0);
    const submitted = await submit(client, "sdk-follow-3", FIXTURES.off);
    await sleep(400);
    expect(polls(submitted.id, "sdk-follow-3")).toHaveLength(0);
    expect(llm(submitted.id)).toHaveLength(0);
  });
});

describe("SDK: followBackgroundMs", () => {
  it("refuses a wait that is not a number of ms, 0 or more, saying so", () => {
    // 2^31 ms: Node would fire the timer after 1 ms, polling at once instead of in ~25 days.
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, "30000", 2 ** 31])
      expect(() =>
        wrapOpenAI(new OpenAI({ apiKey: "sk-test" }), { followBackgroundMs: bad as number }),
      ).toThrow(/followBackgroundMs must be a number of ms, 0 or more/);
  });
});
