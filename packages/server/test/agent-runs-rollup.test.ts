// The agent-runs rollup counts a run's LLM calls as its limits do: model calls, embeddings included (a
// batch's results and a hosted tool's model call aside), so the rollup and GET /api/runs/:id agree.
import { afterAll, beforeAll, expect, it } from "vitest";
import { getOk, type Json, openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const run = { agent_run_id: "rollup-run-1", agent_type: "embedder" };

beforeAll(async () => {
  rt = await openTestRuntime();
  const res = await postEvents(rt.app, rt.rootToken, [
    validRecord(run),
    validRecord({
      ...run,
      kind: "embedding",
      api: "openai.embeddings",
      model: "text-embedding-3-small",
      output_tokens: 0,
    }),
    validRecord({ ...run, kind: "tool", api: undefined }),
  ]);
  expect(res.json.rejected, JSON.stringify(res.json)).toBe(0);
});
afterAll(() => rt?.close());

it("counts a run's embeddings among its LLM calls, as GET /api/runs/:id does", async () => {
  const live = await getOk(rt.app, rt.rootToken, "/api/runs/rollup-run-1");
  expect(live.usage.llm_calls).toBe(2);
  const rollup = await getOk(rt.app, rt.rootToken, "/api/rollups/agent-runs");
  const row = (rollup.agent_types as Json[]).find((r) => r.agent_type === "embedder");
  expect(row).toMatchObject({ runs: 1, llm_calls_per_run: 2, tool_calls_per_run: 1 });
});
