// One gateway over the local mock upstream for a test file, with the official `openai` client pointed at it.
import OpenAI from "openai";
import { afterAll, beforeAll } from "vitest";
import { startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";

export interface OpenAIThroughGateway {
  mock: MockUpstream;
  gw: Awaited<ReturnType<typeof startTestGateway>>;
  openai: OpenAI;
}

/** Starts them before the file's tests (handing them to `set`) and stops them after. */
export function openaiThroughGateway(set: (s: OpenAIThroughGateway) => void): void {
  let s: OpenAIThroughGateway | undefined;
  beforeAll(async () => {
    const mock = await startMockUpstream({ chunkDelayMs: 0 });
    const gw = await startTestGateway(mock.url);
    s = { mock, gw, openai: new OpenAI({ apiKey: "sk-test-123", baseURL: `${gw.url}/v1`, maxRetries: 0 }) };
    set(s);
  });
  afterAll(async () => {
    await s?.gw.stop();
    await s?.mock.close();
  });
}
