// An agent run's attempt its upstream refused for the stream_options a gateway added (error_type
// stream_options_refused), ingested through the events API (another Tollgate's export, say): no LLM call of
// the run, live as in the run rebuilt from the store after a restart.
import { rmSync } from "node:fs";
import { STREAM_OPTIONS_REFUSED, uuidv7 } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { adminRequest, postEvents, startTestGateway } from "./helpers.js";
import { startMockUpstream } from "./mock-upstream.js";

describe("an ingested run's attempt refused for stream_options", () => {
  it("is no LLM call of the run, live as after a restart", async () => {
    const mock = await startMockUpstream({ chunkDelayMs: 0 });
    const first = await startTestGateway(mock.url, {}, { keepDataDir: true });
    try {
      const call = (attempt: number, refused: boolean) => ({
        event_id: uuidv7(),
        ts_start: Date.now() - 1_000 + attempt,
        provider: "openai",
        api: "openai.chat",
        model: "gpt-4.1-nano",
        stream: true,
        ...(refused
          ? { status: "error", http_status: 400, error_type: STREAM_OPTIONS_REFUSED }
          : { input_uncached_tokens: 10, output_tokens: 5 }),
        request_id: "req-resent",
        attempt,
        agent_run_id: "ingested-resent",
        agent_type: "ingested",
      });
      const posted = await postEvents(first.runtime.app, first.runtime.rootToken, [
        call(1, true),
        call(2, false),
      ]);
      expect(posted.json.accepted).toBe(2);
      const live = (await adminRequest(first, "GET", "/api/runs/ingested-resent")).json.usage;
      expect(live).toMatchObject({ llm_calls: 1 });
      await first.runtime.recorder.flush();
      await first.stop();
      const second = await startTestGateway(mock.url, {}, { dataDir: first.dataDir, keepDataDir: true });
      try {
        const rebuilt = (await adminRequest(second, "GET", "/api/runs/ingested-resent")).json.usage;
        expect(rebuilt).toMatchObject({ llm_calls: 1, cost_nanousd: live.cost_nanousd });
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(first.dataDir, { recursive: true, force: true });
      await mock.close();
    }
  });
});
