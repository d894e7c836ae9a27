// run.llm returning an openai-node stream() helper, which makes its wrapped call a tick after it is returned:
// that call holds its worst case as any wrapped call inside run.llm does, so nothing warns that it was not
// held. A file of its own: the warning is said once a process.
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { agentRun, wrapOpenAI } from "../src/index.js";

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(() => mock?.close());

describe("agentRun: run.llm returning a wrapped client's stream() helper", () => {
  it("holds its call and says nothing of calls not held (TOLLGATE_LLM_UNHELD)", async () => {
    const wrapped = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: () => {},
    });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      await agentRun({ type: "helper", limits: { max_cost_usd: "1" } }, async (run) => {
        const stream = await run.llm("openai.chat", async () =>
          wrapped.chat.completions.stream({
            model: "gpt-4o-mini",
            messages: [{ role: "user", content: "a" }],
          }),
        );
        await new Promise<void>((resolve) => stream.on("connect", () => resolve()));
        expect(run.held.cost_nanousd).toBeGreaterThan(0n); // held while in flight
        await stream.finalChatCompletion();
        expect(run.held.cost_nanousd).toBe(0n);
        expect(run.usage.cost_nanousd).toBeGreaterThan(0n);
      });
      await sleep(10); // warnings are emitted on the next tick
      expect(warnings.filter((w) => (w as { code?: string }).code === "TOLLGATE_LLM_UNHELD")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});
