// The Responses image generation tool's own record (its parent_event_id names the response's): wherever an
// agent run is counted from records rather than live (the events API, a rebuild after a restart, the
// agent-run rollup), it counts as spend, not as another LLM call of the run, as the gateway counts it live.
import { rmSync } from "node:fs";
import {
  buildCallRecord,
  extractFromResponse,
  PricingEngine,
  toolModelCallInput,
  uuidv7,
} from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { adminRequest, gatewayRecords, postEvents, startTestGateway } from "./helpers.js";
import { IMAGE_FX, imageFixture, type MockUpstream, startMockUpstream } from "./mock-upstream.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 0 });
  gw = await startTestGateway(mock.url);
});

afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

const ask = (tool: Record<string, unknown> = {}) => ({
  model: "gpt-5-nano",
  input: "Draw a cat",
  tools: [{ type: "image_generation" as const, ...tool }],
});
const client = (base: typeof gw, headers: Record<string, string>) =>
  new OpenAI({ apiKey: "sk-test-123", baseURL: `${base.url}/v1`, maxRetries: 0, defaultHeaders: headers });

describe("the image tool's record is no LLM call of its run, wherever the run is counted", () => {
  it("events API: an SDK's response and its image tool record count one LLM call", async () => {
    const engine = new PricingEngine();
    const u = extractFromResponse("openai.responses", JSON.parse(imageFixture(IMAGE_FX.tool)));
    const run = { agent_run_id: "rv-img-ingest", agent_type: "rv-img" };
    const main = {
      event_id: uuidv7(),
      ts_start: Date.now() - 2_000,
      ts_end: Date.now() - 1_000,
      provider: "openai",
      api: "openai.responses",
      model: "gpt-5-nano",
      span_id: "rvspan1",
      trace_id: "rvtrace1",
      request_id: "resp_rv",
      ...run,
      ...u.usage,
    };
    // As the SDK sends it (TrackedCall.#emitToolCall): the tool's record input built from the main record's.
    const tool = toolModelCallInput(main, u.tool_model_call!, null, uuidv7());
    expect(buildCallRecord(tool, { workspaceId: "default", engine }).ok).toBe(true);
    const posted = await postEvents(gw.runtime.app, gw.runtime.rootToken, [main, tool]);
    expect(posted.json.accepted).toBe(2);
    const state = (await adminRequest(gw, "GET", "/api/runs/rv-img-ingest")).json;
    expect(state.usage.llm_calls).toBe(1);
  });

  it("the agent-run rollup counts a run's response with an image as one LLM call", async () => {
    const headers = { "x-tollgate-agent-run-id": "rv-img-rollup", "x-tollgate-agent-type": "rv-img-rollup" };
    await client(gw, headers).responses.create(ask());
    await vi.waitFor(
      async () =>
        expect(
          (await gatewayRecords(gw.runtime)).filter((r) => r.agent_run_id === "rv-img-rollup"),
        ).toHaveLength(2),
      { timeout: 5_000, interval: 20 },
    );
    expect((await adminRequest(gw, "GET", "/api/runs/rv-img-rollup")).json.usage.llm_calls).toBe(1);
    const rollup = (await adminRequest(gw, "GET", "/api/rollups/agent-runs?from=1d")).json;
    expect(
      rollup.agent_types.find((t: { agent_type: string }) => t.agent_type === "rv-img-rollup"),
    ).toMatchObject({
      runs: 1,
      llm_calls_per_run: 1,
    });
  });

  it("a run rebuilt after a restart counts its response with an image as one LLM call", async () => {
    const first = await startTestGateway(mock.url, {}, { keepDataDir: true });
    try {
      await adminRequest(first, "PUT", "/api/agents/rv-img-restart", { max_llm_calls: 1 });
      const headers = { "x-tollgate-agent-run-id": "rv-img-run", "x-tollgate-agent-type": "rv-img-restart" };
      await client(first, headers).responses.create(ask());
      await vi.waitFor(
        async () =>
          expect(
            (await gatewayRecords(first.runtime)).filter((r) => r.agent_run_id === "rv-img-run"),
          ).toHaveLength(2),
        { timeout: 5_000, interval: 20 },
      );
      const before = (await adminRequest(first, "GET", "/api/runs/rv-img-run")).json;
      expect(before.usage.llm_calls).toBe(1);
      await first.stop();
      const second = await startTestGateway(mock.url, {}, { dataDir: first.dataDir, keepDataDir: true });
      try {
        const after = (await adminRequest(second, "GET", "/api/runs/rv-img-run")).json;
        expect(after.usage).toMatchObject({ llm_calls: 1, cost_nanousd: before.usage.cost_nanousd });
        expect(after.state).toBe("running");
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(first.dataDir, { recursive: true, force: true });
    }
  });
});
