// A background stream the app aborts unread once its first event came (so it is recorded as its submission,
// keeping its hold), and then reads all the same: the events its SDK had taken in before the abort still
// come, the final one (`response.completed`) included when the whole stream had arrived. That event finds
// the response finished: recorded once, with its cost, as a poll finding it so would record it, and its
// submission's hold goes. A file of its own: the SDK records a response once per process, under the id its
// fixture gives it.
import { setTimeout as sleep } from "node:timers/promises";
import { extractFromSse } from "@tollgate/core";
import { describe, expect, it, vi } from "vitest";
import { fixture } from "../../server/test/mock-upstream.js";
import { agentRun } from "../src/index.js";
import { clientsAgainstMock, fixtureResponseCost } from "./background-helpers.js";

const clients = clientsAgainstMock();
const { sent } = clients;
const REL = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
// No delay between events: the whole stream has come in by the time the app aborts it.
const CASE = { "x-mock-case": "sdk-bg-stream-aborted-then-read", "x-mock-fixture": REL };

describe("SDK: a background stream aborted unread after its first event, then read", () => {
  it("records the response its final event carries once, with its cost, and lets its hold go", async () => {
    const openai = clients.wrapped();
    const expected = extractFromSse("openai.responses", fixture(REL))!;
    const id = expected.response_id!;
    const cost = fixtureResponseCost(REL);
    await agentRun({ type: "researcher", limits: { max_cost_usd: "10" } }, async (run) => {
      const stream = await openai.responses.create(
        { model: "gpt-5.2", input: "Tallest mountain in Alberta?", stream: true, background: true },
        { headers: { ...CASE, "x-mock-chunk-delay-ms": "0" } },
      );
      await sleep(150); // its first event came (the rest too): nothing read it
      stream.controller.abort();
      await vi.waitFor(() => expect(sent.length).toBe(1));
      expect(sent[0]).toMatchObject({ kind: "other", request_id: id, error_type: "client_disconnected" });
      expect(run.held.cost_nanousd).toBeGreaterThan(0n);
      const types: string[] = [];
      for await (const ev of stream) types.push(ev.type);
      expect(types.at(-1)).toBe("response.completed"); // the scenario: the final event still came
      expect(sent.slice(1)).toMatchObject([{ kind: "llm", request_id: id, agent_run_id: run.id }]);
      expect(run.usage.cost_nanousd).toBe(cost);
      expect(run.held).toEqual({ cost_nanousd: 0n, total_tokens: 0 });
      // A poll after finds it recorded: nothing more.
      expect((await openai.responses.retrieve(id, {}, { headers: CASE })).status).toBe("completed");
      expect(sent).toHaveLength(2);
      expect(run.usage.cost_nanousd).toBe(cost);
    });
  });
});
