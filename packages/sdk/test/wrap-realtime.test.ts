// wrapOpenAIRealtime: the official client's Realtime session (`openai`'s OpenAIRealtimeWS) against the
// mock upstream that answers with real captured events: each response and each input transcription is
// one record, priced as the gateway prices it, attributed from where the session was wrapped.
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { buildCallRecord, type CallRecord, type CallRecordInput, PricingEngine } from "@tollgate/core";
import OpenAI from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COST, RESPONSE_ID, startRealtimeMock, TRANSCRIBE_UPDATE } from "../../server/test/realtime-mock.js";
import { agentRun, withAttribution, wrapOpenAIRealtime } from "../src/index.js";

let mock: Awaited<ReturnType<typeof startRealtimeMock>>;
const engine = new PricingEngine();
/** The record as a server builds and prices it from what the SDK sent. */
function built(input: CallRecordInput): CallRecord {
  const res = buildCallRecord(input, { workspaceId: "default", engine });
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  return res.record;
}
beforeAll(async () => {
  mock = await startRealtimeMock();
});
afterAll(async () => {
  await mock?.close();
});

/**
 * The SDK's Realtime client always connects with wss:// (it sets the scheme itself); the mock speaks
 * plain ws://, so its TCP connection is made here (what TLS would carry is the same).
 */
function realtimeClient(query: { model?: string }) {
  const client = new OpenAI({ apiKey: "sk-test-realtime", baseURL: `${mock.origin}/v1` });
  return new OpenAIRealtimeWS(
    {
      model: query.model ?? "gpt-realtime",
      options: { createConnection: (o: { port: number; host: string }) => connect(o.port, o.host) },
    } as never,
    client,
  );
}

const opened = (rt: OpenAIRealtimeWS) =>
  new Promise<void>((resolve, reject) => {
    rt.socket.once("open", () => resolve());
    rt.socket.once("error", reject);
  });

describe("wrapOpenAIRealtime", () => {
  it("records each response with its usage, the model the session names, the scope's attribution", async () => {
    const sent: CallRecordInput[] = [];
    const rt = withAttribution({ userId: "voice-user", feature: "voice" }, () =>
      wrapOpenAIRealtime(realtimeClient({}), { sink: (r) => sent.push(r) }),
    );
    await opened(rt);
    const done = new Promise<void>((r) => rt.on("response.done", () => r()));
    rt.send({ type: "response.create" });
    await done;
    rt.close();
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      api: "openai.realtime",
      model: "gpt-realtime",
      request_id: RESPONSE_ID,
      status: "ok",
      user_id: "voice-user",
      feature: "voice",
      input_audio_tokens: 9,
      cache_audio_read_tokens: 64,
    });
    expect(built(sent[0]!).cost_nanousd).toBe(COST); // as the gateway records it
  });

  it("records an input transcription as a call of the transcription model the client set", async () => {
    const sent: CallRecordInput[] = [];
    const rt = wrapOpenAIRealtime(realtimeClient({}), { sink: (r) => sent.push(r) });
    await opened(rt);
    const transcribed = new Promise<void>((r) =>
      rt.on("conversation.item.input_audio_transcription.completed", () => r()),
    );
    rt.send(JSON.parse(TRANSCRIBE_UPDATE));
    await transcribed;
    rt.close();
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      model: "gpt-4o-mini-transcribe",
      input_audio_tokens: 16,
      output_tokens: 8,
    });
    expect(built(sent[0]!).cost_nanousd).toBe(88_000n);
  });
});

describe("wrapOpenAIRealtime (review)", () => {
  it("wrapped twice, records each response once (as a client wrapped twice does)", async () => {
    const sent: CallRecordInput[] = [];
    const sink = (r: CallRecordInput) => void sent.push(r);
    const rt = wrapOpenAIRealtime(wrapOpenAIRealtime(realtimeClient({}), { sink }), { sink });
    await opened(rt);
    const done = new Promise<void>((r) => rt.on("response.done", () => r()));
    rt.send({ type: "response.create" });
    await done;
    rt.close();
    expect(sent.map((r) => r.request_id)).toHaveLength(1); // was 2: the response's cost twice
  });

  it("wrapped again with other options (another sink): refused, as a client that makes no copy of itself is, not recorded by the first silently", async () => {
    const first: CallRecordInput[] = [];
    const rt = wrapOpenAIRealtime(realtimeClient({}), { sink: (r) => void first.push(r) });
    await opened(rt);
    try {
      expect(() => wrapOpenAIRealtime(rt, { sink: () => {} })).toThrow(
        /wrapOpenAIRealtime: .*wrapped already, with other options/,
      );
    } finally {
      rt.close();
    }
  });

  it("a response under way when the app closes the session is recorded, cut off (as the gateway records it)", async () => {
    const sent: CallRecordInput[] = [];
    const rt = wrapOpenAIRealtime(realtimeClient({}), { sink: (r) => sent.push(r) });
    await opened(rt);
    const created = new Promise<void>((r) => rt.on("response.created", () => r()));
    rt.send({ type: "response.create", response: { metadata: { hold: "1" } } });
    await created;
    const closed = new Promise<void>((r) => rt.socket.once("close", () => r()));
    rt.close();
    await closed;
    expect(sent).toHaveLength(1); // was 0: the response never recorded
    expect(sent[0]).toMatchObject({ status: "error", error_type: "session_closed", model: "gpt-realtime" });
  });

  it("a response past its agent run's max_llm_calls is cancelled and recorded, not thrown into the socket's listener", async () => {
    const sent: CallRecordInput[] = [];
    const thrown: unknown[] = [];
    const onUncaught = (e: unknown) => thrown.push(e);
    process.prependListener("uncaughtException", onUncaught);
    try {
      await agentRun({ type: "voice", limits: { max_llm_calls: 1 } }, async (run) => {
        const rt = wrapOpenAIRealtime(realtimeClient({}), { sink: (r) => sent.push(r) });
        await opened(rt);
        const seen: string[] = [];
        rt.on("event", (e) => seen.push(e.type));
        const dones: string[] = [];
        const both = new Promise<void>((r) =>
          rt.on("response.done", (e) => {
            dones.push(e.response.status ?? "");
            if (dones.length === 2) r();
          }),
        );
        rt.send({ type: "response.create" });
        rt.send({ type: "response.create", response: { metadata: { hold: "1" } } });
        await Promise.race([both, sleep(1_000)]);
        rt.close();
        expect(thrown).toEqual([]); // was AgentRunKilledError, out of ws's message listener
        expect(dones).toEqual(["completed", "cancelled"]); // the second was left running
        expect(seen.filter((t) => t === "response.created")).toHaveLength(2); // the app's own listener
        expect(run.killed?.ceiling).toBe("llm_calls");
      });
    } finally {
      process.removeListener("uncaughtException", onUncaught);
    }
    expect(sent.map((r) => r.status)).toEqual(["ok", "error"]); // the refused one recorded, cancelled
    expect(sent[1]).toMatchObject({ error_type: "client_cancelled" });
  });

  it("a response its run's calls in flight leave no room for is cancelled and recorded, not thrown into the socket's listener", async () => {
    const sent: CallRecordInput[] = [];
    const thrown: unknown[] = [];
    const onUncaught = (e: unknown) => thrown.push(e);
    process.prependListener("uncaughtException", onUncaught);
    try {
      await agentRun({ type: "voice", limits: { max_cost_usd: "0.50" } }, async (run) => {
        const inFlight = { cost_nanousd: 600_000_000n, total_tokens: 0 }; // another call's $0.60 worst case
        run.hold(inFlight);
        const rt = wrapOpenAIRealtime(realtimeClient({}), { sink: (r) => sent.push(r) });
        await opened(rt);
        const done = new Promise<string>((r) => rt.on("response.done", (e) => r(e.response.status ?? "")));
        rt.send({ type: "response.create", response: { metadata: { hold: "1" } } });
        expect(await Promise.race([done, sleep(1_000)])).toBe("cancelled");
        rt.close();
        run.releaseHold(inFlight, false);
        expect(thrown).toEqual([]); // AgentRunHeldError stays out of ws's message listener
        expect(run.usage.llm_calls).toBe(0);
      });
    } finally {
      process.removeListener("uncaughtException", onUncaught);
    }
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ status: "error", error_type: "client_cancelled" });
  });

  it("wrapped after its session.created went by: the model of the connection's URL", async () => {
    const sent: CallRecordInput[] = [];
    const rt = realtimeClient({ model: "gpt-realtime" });
    const created = new Promise<void>((r) => rt.on("session.created", () => r()));
    await created;
    wrapOpenAIRealtime(rt, { sink: (r) => sent.push(r) });
    const done = new Promise<void>((r) => rt.on("response.done", () => r()));
    rt.send({ type: "response.create" });
    await done;
    rt.close();
    expect(sent.at(-1)).toMatchObject({ model: "gpt-realtime", model_requested: "gpt-realtime" });
    expect(built(sent.at(-1)!).priced).toBe(true);
  });
});
