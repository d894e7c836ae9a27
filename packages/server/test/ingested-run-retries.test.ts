// An agent run's calls ingested through the events API (an SDK's, an OTLP exporter's): a retry (attempt > 1)
// counts live as the run rebuilt from the store after a restart counts it, so a restart never finds a run
// over its max_retries that was under it a moment before.
import { rmSync } from "node:fs";
import { uuidv7 } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { adminRequest, postEvents, startTestGateway } from "./helpers.js";
import { startMockUpstream } from "./mock-upstream.js";

describe("an ingested run's retries", () => {
  it("count live as after a restart", async () => {
    const mock = await startMockUpstream({ chunkDelayMs: 0 });
    const first = await startTestGateway(mock.url, {}, { keepDataDir: true });
    try {
      const call = (attempt: number) => ({
        event_id: uuidv7(),
        ts_start: Date.now() - 1_000,
        provider: "openai",
        api: "openai.chat",
        model: "gpt-4.1-nano",
        input_uncached_tokens: 10,
        output_tokens: 5,
        request_id: "req-retried",
        attempt,
        agent_run_id: "ingested-retries",
        agent_type: "ingested",
      });
      const posted = await postEvents(first.runtime.app, first.runtime.rootToken, [
        call(1),
        call(2),
        call(3),
      ]);
      expect(posted.json.accepted).toBe(3);
      const live = (await adminRequest(first, "GET", "/api/runs/ingested-retries")).json.usage;
      expect(live).toMatchObject({ llm_calls: 3, retries: 2 });
      await first.runtime.recorder.flush();
      await first.stop();
      const second = await startTestGateway(mock.url, {}, { dataDir: first.dataDir, keepDataDir: true });
      try {
        const rebuilt = (await adminRequest(second, "GET", "/api/runs/ingested-retries")).json.usage;
        expect(rebuilt).toMatchObject({ llm_calls: 3, retries: 2, cost_nanousd: live.cost_nanousd });
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(first.dataDir, { recursive: true, force: true });
      await mock.close();
    }
  });
});
