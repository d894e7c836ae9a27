// openai-node's `responses.stream({ response_id })`, returned from `run.llm(…)` at max_llm_calls: it resumes a
// background response's stream a tick after run.llm settled, a poll, which kills nothing; a model call made
// so is still refused. A file of its own: the SDK records a response once per process, under the id its
// fixture gives it.
import { describe, expect, it } from "vitest";
import { agentRun } from "../src/index.js";
import { clientsAgainstMock, cutBackgroundStream } from "./background-helpers.js";

const REL = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
const CASE = { "x-mock-case": "sdk-resume-helper-at-max", "x-mock-fixture": REL };

const clients = clientsAgainstMock();

describe("SDK: a background stream resumed by the stream() helper returned from run.llm at max_llm_calls", () => {
  it("is a poll: it goes and kills nothing; the helper's model call is refused", async () => {
    const openai = clients.wrapped();
    await agentRun({ type: "researcher", limits: { max_llm_calls: 1 } }, async (run) => {
      const seen = await cutBackgroundStream(openai, "gpt-5.2", CASE);
      const resumed = await run.llm("openai.responses", async () =>
        openai.responses.stream({ response_id: seen[0]!.response!.id }, { headers: CASE }),
      );
      expect((await resumed.finalResponse()).status).toBe("completed");
      expect(run.killed).toBeNull();
      expect(run.usage.llm_calls).toBe(1); // the submission
      const asked = await run.llm("openai.responses", async () =>
        openai.responses.stream({ model: "gpt-5.2", input: "again" }, { headers: CASE }),
      );
      // The helper rethrows the refusal as its own error (OpenAIError), with its message.
      await expect(asked.finalResponse()).rejects.toThrow(/crossed its llm_calls ceiling \(2 of 1\)/);
      expect(run.killed?.ceiling).toBe("llm_calls");
    });
  });
});
