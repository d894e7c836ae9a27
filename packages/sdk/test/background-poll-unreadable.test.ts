// A background response a poll finds `completed` without usage the SDK can read (none, or usage no reader
// can price): it ran, so it is an ok call of unknown cost, as the gateway records it: its llm record under
// the event id a poll's record of it takes (usage_unreadable), its run charged the worst case its submission
// held, as any call whose cost stays unknown. It used to count as a response finished without usage (failed
// or cancelled before it ran): nothing recorded, its hold let go, its run charged nothing. A file of its own:
// the SDK records a response once per process, under the id its fixture gives it.
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it, vi } from "vitest";
import { responseEventId } from "../src/ids.js";
import { agentRun } from "../src/index.js";
import { followingClientsAgainstMock, NOTHING_HELD } from "./background-helpers.js";

const wrappedClient = followingClientsAgainstMock();

// A fixture per case: the SDK records a response once per process, under the id its fixture gives it.
const CASES = [
  {
    scenario: "usage-unreadable-when-polled",
    polledBy: "the app",
    fixture: "openai/responses.gpt-5.cached-reasoning.json",
  },
  {
    scenario: "no-usage-when-polled",
    polledBy: "the app",
    fixture: "openai/responses.gpt-4o.cached.json",
  },
  {
    scenario: "usage-unreadable-when-polled",
    polledBy: "the client itself",
    fixture: "openai/responses.gpt-5.6-sol.cache-read.json",
  },
  {
    scenario: "no-usage-when-polled",
    polledBy: "the client itself",
    fixture: "openai/responses.gpt-5.6-sol.cache-write.json",
  },
] as const;

describe("SDK: a background response a poll finds completed, its usage unreadable", () => {
  it.each(CASES)(
    "$scenario, polled by $polledBy: recorded once as an ok call of unknown cost, its run charged its hold",
    async ({ scenario, polledBy, fixture }) => {
      const own = polledBy === "the client itself";
      const { client, sent } = wrappedClient(own ? 50 : 0);
      const headers = {
        "x-mock-case": `sdk-poll-unreadable-${scenario}-${own}`,
        "x-mock-fixture": fixture,
        "x-mock-scenario": scenario,
      };
      await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
        const submitted = await client.responses.create(
          { model: "gpt-5", input: "Research caching", background: true },
          { headers },
        );
        const held = run.held.cost_nanousd;
        expect(held).toBeGreaterThan(0n);
        const llm = () => sent.filter((r) => r.kind === "llm" && r.request_id === submitted.id);
        if (own) await vi.waitFor(() => expect(llm()).toHaveLength(1), { timeout: 5_000, interval: 20 });
        else {
          const poll = () => client.responses.retrieve(submitted.id, {}, { headers });
          expect((await poll()).status).toBe("in_progress");
          for (let i = 0; i < 2; i++) expect((await poll()).status).toBe("completed");
        }
        await sleep(200); // a second record, were there one, would be in by now
        expect(llm()).toEqual([
          expect.objectContaining({
            event_id: responseEventId(submitted.id),
            status: "ok",
            error_type: "usage_unreadable",
            agent_run_id: run.id,
          }),
        ]);
        expect(run.held).toEqual(NOTHING_HELD);
        expect(run.usage.cost_nanousd).toBe(held);
        expect(run.usage.llm_calls).toBe(1); // the submission's
      });
    },
  );
});
