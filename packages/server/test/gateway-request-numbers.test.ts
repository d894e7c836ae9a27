// A model call's numbers past what any provider takes (max_tokens 1e308, n 1e308): held, and refused by
// the budget they cannot fit, never a fault of the gateway's own.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminRequest, startTestGateway } from "./helpers.js";
import { startMockUpstream } from "./mock-upstream.js";

type Gateway = Awaited<ReturnType<typeof startTestGateway>>;
type Mock = Awaited<ReturnType<typeof startMockUpstream>>;

const messages = [{ role: "user", content: "hi" }];

describe("gateway: a request's numbers past a double's range", () => {
  let mock: Mock;
  let gw: Gateway;
  beforeAll(async () => {
    mock = await startMockUpstream({ chunkDelayMs: 0 });
    gw = await startTestGateway(mock.url);
    const budget = { id: "daily", scope: {}, window: "day", limit_usd: "1.00", action: "block" };
    expect((await adminRequest(gw, "POST", "/api/budgets", budget)).status).toBe(201);
  });
  afterAll(async () => {
    await gw.stop();
    await mock.close();
  });

  it("an output cap times n that overflows is held at the most a record takes: 429 budget_exceeded, not 502", async () => {
    const bodies = [
      `{"model":"gpt-4o-mini","messages":${JSON.stringify(messages)},"max_tokens":1e308,"n":2}`,
      `{"model":"gpt-4o-mini","messages":${JSON.stringify(messages)},"max_tokens":10,"n":1e308}`,
      JSON.stringify({
        model: "claude-sonnet-4-5",
        max_tokens: 1024,
        messages,
        tools: [
          {
            type: "advisor_20260301",
            name: "advisor",
            model: "claude-opus-4-1",
            max_uses: 2,
            max_tokens: 1e308,
          },
        ],
      }),
    ];
    for (const [i, body] of bodies.entries()) {
      const anthropic = i === 2;
      const res = await fetch(`${gw.url}/v1/${anthropic ? "messages" : "chat/completions"}`, {
        method: "POST",
        headers: anthropic
          ? {
              "content-type": "application/json",
              "x-api-key": "sk-ant-test",
              "anthropic-version": "2023-06-01",
            }
          : { "content-type": "application/json", authorization: "Bearer sk-test" },
        body,
      });
      const json = (await res.json()) as { error: { code?: string; type: string } };
      expect(res.status, body).toBe(429);
      expect(json.error.code ?? json.error.type, body).toBe("budget_exceeded");
    }
    expect(mock.requests).toHaveLength(0);
  });
});
