// A background response a poll finds `incomplete` (it ran, and stopped at its output cap, say) without usage
// the SDK can read: it ran, so it is an ok call of unknown cost, as a `completed` one without readable usage
// is and as the gateway records both: its llm record under the response's event id (usage_unreadable), its
// run charged the worst case its submission held. It counted as a response finished without usage (failed
// or cancelled before it ran): nothing recorded, its hold let go, its run charged $0. A file of its own: the
// SDK records a response once per process.
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it, vi } from "vitest";
import { responseEventId } from "../src/ids.js";
import { agentRun } from "../src/index.js";
import { clientsAgainstMock, NOTHING_HELD } from "./background-helpers.js";

/** The mock, but a poll that finds the response finished finds it `incomplete`, without usage. */
const incompleteWithoutUsage: typeof fetch = async (url, init) => {
  const res = await fetch(url, init);
  if (init?.method !== "GET") return res;
  const body = (await res.json()) as Record<string, unknown>;
  if (body.status === "completed")
    Object.assign(body, {
      status: "incomplete",
      incomplete_details: { reason: "max_output_tokens" },
      usage: null,
    });
  return new Response(JSON.stringify(body), {
    status: res.status,
    headers: { "content-type": "application/json" },
  });
};

const clients = clientsAgainstMock({ fetch: incompleteWithoutUsage });
const { sent } = clients;

describe("SDK: a background response a poll finds incomplete, without usage", () => {
  it("is recorded once as an ok call of unknown cost, its run charged its hold, never $0", async () => {
    const openai = clients.wrapped();
    const headers = { "x-mock-case": "sdk-poll-incomplete-unreadable" };
    await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-5", input: "Research caching", background: true, max_output_tokens: 1000 },
        { headers },
      );
      const held = run.held.cost_nanousd;
      expect(held).toBeGreaterThan(0n);
      const poll = () => openai.responses.retrieve(submitted.id, {}, { headers });
      await vi.waitFor(async () => expect((await poll()).status).toBe("incomplete"), {
        timeout: 5_000,
        interval: 20,
      });
      await sleep(200); // a second record, were there one, would be in by now
      const llm = sent.filter((r) => r.kind === "llm" && r.request_id === submitted.id);
      expect(llm).toEqual([
        expect.objectContaining({
          event_id: responseEventId(submitted.id),
          status: "ok",
          error_type: "usage_unreadable",
          agent_run_id: run.id,
        }),
      ]);
      expect(run.held).toEqual(NOTHING_HELD);
      expect(run.usage.cost_nanousd).toBe(held);
    });
  });
});
