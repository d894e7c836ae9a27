// A background response's submission pushed out of what the SDK remembers (more than 10,000 outstanding):
// nothing will find the response finished for it any more, so its hold on its run goes then, nothing spent,
// and the poll that finds it finished later counts its cost once (for the poll's run), not on top of a hold
// that would stay the hour. Only those still running take room: one found finished without usage leaves it.
// A file of its own: the SDK records a response once per process, under the id its fixture gives it.
import { describe, expect, it } from "vitest";
import { agentRun } from "../src/index.js";
import { recordIfFinished, rememberSubmission } from "../src/instrument/background.js";
import { type CallSpec, TrackedCall } from "../src/instrument/call.js";
import { clientsAgainstMock, fixtureResponseCost } from "./background-helpers.js";

const clients = clientsAgainstMock();
const REL = "openai/responses.gpt-5.cached-reasoning.json";
const headers = { "x-mock-case": "sdk-bg-forgotten", "x-mock-fixture": REL };
const empty = { cost_nanousd: 0n, total_tokens: 0 };
const spec: CallSpec = { api: "openai.responses", kind: "llm", provider: "openai" };

let newer = 0;
/** `n` more submissions since, that nothing polls (webhooks): newer than the run's. Their ids. */
function newerSubmissions(n: number): string[] {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `resp_newer_${newer++}`;
    rememberSubmission(id, new TrackedCall(spec, { model: "gpt-5" }, () => {}));
    ids.push(id);
  }
  return ids;
}

/** A poll that finds response `id` failed before it ran: finished, without usage. */
function pollFailedUnbilled(id: string): void {
  const failed = { id, object: "response", background: true, status: "failed", output: [], usage: null };
  recordIfFinished(failed, new TrackedCall(spec, {}, () => {}));
}

describe("SDK: a background submission pushed out by 10,000 newer ones", () => {
  it("lets its hold go then: the poll that finds it finished counts its cost alone", async () => {
    const openai = clients.wrapped();
    await agentRun({ type: "researcher", limits: { max_cost_usd: "10" } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", background: true },
        { headers },
      );
      expect(run.held.cost_nanousd).toBeGreaterThan(0n);
      newerSubmissions(9_999);
      expect(run.held.cost_nanousd).toBeGreaterThan(0n); // still remembered
      newerSubmissions(1);
      expect(run.held).toEqual(empty);
      expect(run.usage.cost_nanousd).toBe(0n);
      await openai.responses.retrieve(submitted.id, {}, { headers }); // in_progress
      expect((await openai.responses.retrieve(submitted.id, {}, { headers })).status).toBe("completed");
      const cost = fixtureResponseCost(REL);
      expect(run.usage.cost_nanousd).toBe(cost);
      expect(run.held).toEqual(empty);
    });
  });

  it("streamed, pushed out while still read, then found finished by a poll: its end without usage it can read counts nothing more", async () => {
    const openai = clients.wrapped();
    const streamed = {
      "x-mock-case": "sdk-bg-forgotten-stream",
      "x-mock-fixture": "openai/responses.stream.gpt-5.reasoning.sse",
      "x-mock-scenario": "usage-unreadable-at-end",
    };
    await agentRun({ type: "researcher", limits: { max_cost_usd: "10" } }, async (run) => {
      const stream = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", stream: true, background: true },
        { headers: streamed },
      );
      for await (const ev of stream) {
        if (ev.type !== "response.created") continue;
        newerSubmissions(10_000);
        // Its stream still read, it keeps its hold; the poll records the response for its own call.
        const polled = await openai.responses.retrieve(ev.response.id, {}, { headers: streamed });
        expect(polled.status).toBe("completed");
      }
      expect(run.usage.cost_nanousd).toBe(fixtureResponseCost("openai/responses.stream.gpt-5.reasoning.sse"));
      expect(run.held).toEqual(empty);
    });
  });

  it("keeps one still running when 9,999 newer ones finished without usage: they leave their room", async () => {
    const openai = clients.wrapped();
    const fixture = "openai/responses.gpt-5.6-sol.cache-write.json";
    const own = { "x-mock-case": "sdk-bg-forgotten-unbilled", "x-mock-fixture": fixture };
    await agentRun({ type: "researcher", limits: { max_cost_usd: "10" } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", background: true },
        { headers: own },
      );
      expect(run.held.cost_nanousd).toBeGreaterThan(0n);
      for (const id of newerSubmissions(9_999)) pollFailedUnbilled(id);
      newerSubmissions(1);
      expect(run.held.cost_nanousd).toBeGreaterThan(0n); // still remembered: its hold is kept
      await openai.responses.retrieve(submitted.id, {}, { headers: own }); // in_progress
      expect((await openai.responses.retrieve(submitted.id, {}, { headers: own })).status).toBe("completed");
      expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(fixture));
      expect(run.held).toEqual(empty);
    });
  });
});
