// A background stream cut short in an agent run, then resumed to a final event whose usage the SDK cannot
// read (none, or usage no reader can price), of a response that did not fail: left, as the gateway leaves it
// and as a cut stream is, to the poll that reads the usage (the app's, or the client's own), whose record is
// the response's cost, counted once to the submission's run; its hold stays until then. It used to count as
// a response finished without usage: its submission forgotten and its hold let go, nothing recorded, and the
// client polled it no more. A file of its own: the SDK records a response once per process, under the id its
// fixture gives it.
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it, vi } from "vitest";
import { collect } from "../../server/test/helpers.js";
import { agentRun } from "../src/index.js";
import {
  cutBackgroundStream,
  fixtureResponseCost,
  followingClientsAgainstMock,
  LATER,
  NOTHING_HELD,
} from "./background-helpers.js";

const wrappedClient = followingClientsAgainstMock();

// A fixture per case: the SDK records a response once per process, under the id its fixture gives it.
const CASES = [
  {
    scenario: "usage-unreadable-at-end",
    polledBy: "the app",
    fixture: "openai/responses.stream.gpt-5.reasoning.sse",
    model: "gpt-5",
  },
  {
    scenario: "no-usage-at-end",
    polledBy: "the client itself",
    fixture: "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse",
    model: "gpt-5.2",
  },
] as const;

describe("SDK: a background stream cut short, then resumed to its end, its usage unreadable", () => {
  it.each(CASES)(
    "$scenario, then polled by $polledBy: the poll's record is its cost, counted once to its run",
    async ({ scenario, polledBy, fixture, model }) => {
      const own = polledBy === "the client itself";
      // The client's own first poll comes well after the resumption.
      const { client, sent } = wrappedClient(own ? 300 : LATER);
      const headers = { "x-mock-case": `sdk-resume-unreadable-${scenario}`, "x-mock-fixture": fixture };
      await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
        const seen = await cutBackgroundStream(client, model, headers);
        const id = seen[0]!.response!.id;
        const held = run.held.cost_nanousd;
        expect(held).toBeGreaterThan(0n);
        const rest = await collect(
          await client.responses.retrieve(
            id,
            { stream: true, starting_after: seen.at(-1)!.sequence_number },
            { headers: { ...headers, "x-mock-scenario": scenario } },
          ),
        );
        expect(rest.at(-1)).toMatchObject({ type: "response.completed", response: { status: "completed" } });
        // Left to the poll: still held, nothing recorded but the cut stream (its submission).
        expect(run.held.cost_nanousd).toBe(held);
        const llm = () => sent.filter((r) => r.kind === "llm" && r.request_id === id);
        expect(llm()).toEqual([]);
        if (own) await vi.waitFor(() => expect(llm()).toHaveLength(1), { timeout: 5_000, interval: 20 });
        else expect((await client.responses.retrieve(id, {}, { headers })).status).toBe("completed");
        await sleep(200); // a second record, were there one, would be in by now
        expect(llm()).toEqual([
          expect.objectContaining({ status: "ok", error_type: null, agent_run_id: run.id }),
        ]);
        expect(run.held).toEqual(NOTHING_HELD);
        expect(run.usage.cost_nanousd).toBe(fixtureResponseCost(fixture));
        expect(run.usage.llm_calls).toBe(1); // the submission's
      });
    },
  );
});
