// Review of input_audio_ms (d53f17e): a transcription cut short is recorded at its worst case, but only in
// the measures its model bills: not gpt-4o-mini-transcribe's "audio length" (the hold's bytes at 6 kbit/s),
// nor whisper-1's context window of tokens (counted against tokens per minute and agent runs).
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, gatewayRecords, startTestGateway, testCases } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let openai: OpenAI;

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 0 });
  gw = await startTestGateway(mock.url);
  openai = new OpenAI({ apiKey: "sk-test-123", baseURL: `${gw.url}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

const { newCase, tagged } = testCases("tre", () => mock.requests);

describe("gateway: a transcription cut short (review)", () => {
  it("gpt-4o-mini-transcribe (billed by tokens) is not recorded with an audio length it never heard", async () => {
    const minute = toFile(Buffer.alloc(1_920_000, 1), "minute.wav", { type: "audio/wav" });
    const stream = await openai.audio.transcriptions.create(
      { model: "gpt-4o-mini-transcribe", file: await minute, stream: true },
      tagged(newCase(), { "x-mock-scenario": "reset-mid-stream" }),
    );
    await expect(collect(stream)).rejects.toThrow();
    const rec = (await gatewayRecords(gw.runtime)).find(
      (r) => r.model === "gpt-4o-mini-transcribe" && r.cost_source === "estimated",
    );
    expect(rec).toMatchObject({
      input_audio_tokens: 16_000,
      output_tokens: 16_000,
      cost_nanousd: 128_000_000n,
    });
    // Not 2,560,000 ms (42 minutes): the hold's bound for a model billed by the hour.
    expect(rec!.input_audio_ms).toBe(0);
  });

  it("whisper-1 (billed by the hour) broken off: its length held, no tokens it does not bill", async () => {
    const upload = toFile(Buffer.alloc(9_000, 1), "a.mp3", { type: "audio/mpeg" });
    const whole = openai.audio.transcriptions.create(
      { model: "whisper-1", file: await upload },
      tagged(newCase(), { "x-mock-scenario": "reset-mid-stream" }),
    );
    await expect(whole).rejects.toThrow();
    const rec = (await gatewayRecords(gw.runtime)).find(
      (r) => r.model === "whisper-1" && r.cost_source === "estimated",
    );
    // 9,000 bytes at 6 kbit/s: 12 s, $0.0012.
    expect(rec).toMatchObject({ input_audio_ms: 12_000, cost_nanousd: 1_200_000n });
    expect(rec).toMatchObject({ input_uncached_tokens: 0, input_audio_tokens: 0, output_tokens: 0 });
  });
});
