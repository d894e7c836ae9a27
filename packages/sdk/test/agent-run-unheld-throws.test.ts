// run.llm around a client it did not wrap, whose callback throws after its call (the reply failed the app's
// own check, say): nothing held that call either, so it says so as a successful one would. A file of its
// own: the warning is said once a process.
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { agentRun } from "../src/index.js";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(() => mock?.close());

describe("agentRun: run.llm whose callback throws after a call of a client it did not wrap", () => {
  it("warns that nothing held it (TOLLGATE_LLM_UNHELD), as when the callback returns", async () => {
    const plain = new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 });
    const params = { model: "gpt-4.1-nano", messages: [{ role: "user" as const, content: "a" }] };
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      await agentRun(
        { type: "unheld", id: "sdk-unheld-throws", limits: { max_cost_usd: "1" } },
        async (run) => {
          const failing = run.llm("openai.chat", async () => {
            await plain.chat.completions.create(params);
            throw new Error("the reply failed the app's own check");
          });
          await expect(failing).rejects.toThrow("the reply failed the app's own check");
        },
      );
      await sleep(10); // warnings are emitted on the next tick
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ code: "TOLLGATE_LLM_UNHELD" });
      expect(warnings[0]!.message).toContain("agent run sdk-unheld-throws (unheld): run.llm(…) made no call");
    } finally {
      process.off("warning", onWarning);
    }
  });
});
