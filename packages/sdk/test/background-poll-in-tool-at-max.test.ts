// A poll inside a tool call inside `run.llm("openai.responses", …)` at max_llm_calls, in a run with a
// background response of its own: the poll tells what its own run.llm's call is, not the outer one's, so the
// next such run.llm still waits for the outer's call to tell. A client not wrapped there passes the ceiling by
// one call, never two. A file of its own: the SDK records a response once per process, under the id its
// fixture gives it.
import { describe, expect, it } from "vitest";
import { AgentRunKilledError, agentRun } from "../src/index.js";
import { clientsAgainstMock } from "./background-helpers.js";

const clients = clientsAgainstMock();

/** A promise the test settles itself (`settle()`). */
const settledLater = () => {
  let settle!: () => void;
  const settled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  return { settled, settle };
};

describe("SDK: a poll a tool call makes inside run.llm at max_llm_calls", () => {
  it("leaves the outer run.llm's call untold: the next run.llm past the ceiling waits for it, then is refused", async () => {
    const openai = clients.wrapped();
    const headers = {
      "x-mock-case": "sdk-bg-poll-in-tool-at-max",
      "x-mock-fixture": "openai/responses.gpt-4o.cached.json",
    };
    const unwrappedCall = () => clients.plain().responses.create({ model: "gpt-5", input: "a" }, { headers });
    await agentRun({ type: "caller", limits: { max_llm_calls: 1 } }, async (run) => {
      const submitted = await openai.responses.create(
        { model: "gpt-4o", input: "Research", background: true },
        { headers },
      );
      const polled = settledLater();
      const outerGoes = settledLater();
      const outer = run.llm("openai.responses", async () => {
        await run.tool("check", () =>
          run.llm("openai.responses", () => openai.responses.retrieve(submitted.id, {}, { headers })),
        );
        polled.settle();
        await outerGoes.settled;
        return unwrappedCall();
      });
      await polled.settled;
      const next: string[] = [];
      const second = run
        .llm("openai.responses", async () => {
          next.push("callback ran");
          return unwrappedCall();
        })
        .catch((e) => next.push(e instanceof AgentRunKilledError ? `killed on ${e.ceiling}` : String(e)));
      await new Promise((resolve) => setTimeout(resolve, 20)); // the second's moment to start, were it free to
      outerGoes.settle();
      await outer;
      await second;
      expect(next).toEqual(["killed on llm_calls"]);
      expect(run.usage.llm_calls).toBe(2); // the submission and the outer's call, past the ceiling
    });
  });
});
