// OpenAI Realtime sessions (WebSocket) through the gateway, against a mock upstream that answers with
// real captured server events (realtime-mock.ts): messages pass each way as they came, each response is a
// recorded call with its exact cost, limits stop a response (cancelled upstream, the client told), a
// client that hangs up still has its cut-short responses counted, and an upstream's refusal or close
// reaches the client as the upstream gave it. The official client (`openai`'s OpenAIRealtimeWS) too.
import type { IncomingHttpHeaders, Server } from "node:http";
import { type AddressInfo, connect as connectTcp, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { CallRecord } from "@tollgate/core";
import OpenAI from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { adminRequest, gatewayRecords, startConnectProxy, startTestGateway } from "./helpers.js";
import {
  COST,
  RESPONSE_DONE,
  RESPONSE_ID,
  SESSION_CREATED,
  type Seen,
  SLOW_MS,
  startRealtimeMock,
  TRANSCRIBE_UPDATE,
  TRANSCRIBED,
  TRANSCRIPTION_DELTA,
  TRANSCRIPTION_SESSION,
} from "./realtime-mock.js";

let mock: Awaited<ReturnType<typeof startRealtimeMock>>;
let sessions: Seen[];
let upstream: Server;
let upstreamOrigin = "";
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let seq = 0;

beforeAll(async () => {
  mock = await startRealtimeMock();
  ({ sessions, server: upstream, origin: upstreamOrigin } = mock);
  gw = await startTestGateway(upstreamOrigin);
});

afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

/** A client of the gateway's Realtime endpoint, reading every message it gets. */
async function connect(
  headers: Record<string, string> = {},
  query = "model=gpt-realtime",
  protocols?: string[],
) {
  const url = `${gw.url.replace("http:", "ws:")}/v1/realtime?${query}`;
  const ws = new WebSocket(url, protocols, {
    headers: { authorization: "Bearer sk-test-realtime", ...headers },
  });
  const got: { text: string[]; binary: Buffer[] } = { text: [], binary: [] };
  ws.on("message", (data, isBinary) =>
    isBinary ? got.binary.push(data as Buffer) : got.text.push(data.toString()),
  );
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.once("close", (code, reason) => r({ code, reason: reason.toString() })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  const until = async (pred: () => boolean, what: string) => {
    for (let i = 0; i < 250 && !pred(); i++) await sleep(20);
    if (!pred()) throw new Error(`waited for ${what}`);
  };
  return { ws, got, closed, until };
}

async function recordsOf(user: string, of = gw): Promise<CallRecord[]> {
  for (let i = 0; i < 100; i++) {
    const recs = (await gatewayRecords(of.runtime)).filter((r) => r.user_id === user);
    if (recs.length) return recs;
    await sleep(20);
  }
  return [];
}

const typesOf = (texts: string[]) => texts.map((t) => (JSON.parse(t) as { type: string }).type);

describe("an OpenAI Realtime session through the gateway", () => {
  it("relays every message as it came, each way, and records the response with its exact cost", async () => {
    const user = `rt-user-${++seq}`;
    const c = await connect(
      { "x-tollgate-user-id": user, "x-tollgate-feature": "voice" },
      "model=gpt-realtime",
      ["realtime"],
    );
    expect(c.ws.protocol).toBe("realtime"); // the subprotocol the upstream chose
    await c.until(() => c.got.text.length === 1, "session.created");
    expect(c.got.text[0]).toBe(SESSION_CREATED); // byte for byte
    c.ws.send(JSON.stringify({ type: "response.create" }));
    const audio = Buffer.from([0, 1, 2, 250, 251, 252, 253, 254, 255]);
    c.ws.send(audio, { binary: true });
    await c.until(() => c.got.text.length === 4 && c.got.binary.length === 1, "the response");
    expect(typesOf(c.got.text)).toEqual([
      "session.created",
      "response.created",
      "response.output_audio.delta",
      "response.done",
    ]);
    expect(c.got.text[3]).toBe(RESPONSE_DONE);
    expect(c.got.binary[0]).toEqual(audio);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/^tollgate_gateway_websocket_sessions 1$/m);
    c.ws.close(1000, "done");
    const seen = sessions[sessions.length - 1]!;
    expect(await seen.closed).toEqual({ code: 1000, reason: "done" });
    // The upstream got the client's key and messages; no Tollgate header.
    expect(seen.headers.authorization).toBe("Bearer sk-test-realtime");
    expect(Object.keys(seen.headers).filter((h) => h.startsWith("x-tollgate-"))).toEqual([]);
    expect(seen.url).toBe("/v1/realtime?model=gpt-realtime");
    expect(seen.messages).toEqual([JSON.stringify({ type: "response.create" })]);
    expect(seen.binary).toEqual([audio]);

    const [rec, ...more] = await recordsOf(user);
    expect(more).toEqual([]);
    expect(rec).toMatchObject({
      kind: "llm",
      provider: "openai",
      api: "openai.realtime",
      model_requested: "gpt-realtime",
      model: "gpt-realtime", // from session.created: a GA response.done names none
      request_id: RESPONSE_ID,
      status: "ok",
      stream: true,
      feature: "voice",
      input_uncached_tokens: 59,
      input_audio_tokens: 9,
      cache_audio_read_tokens: 64,
      output_tokens: 188,
      output_audio_tokens: 147,
      cost_nanousd: COST,
      priced: true,
    });
    expect(JSON.stringify(rec, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain("sk-test");
  });

  it("the official client (openai's OpenAIRealtimeWS) through the gateway: its events as the upstream sent them, the response recorded", async () => {
    const user = `rt-user-${++seq}`;
    const client = new OpenAI({ apiKey: "sk-test-realtime", baseURL: `${gw.url}/v1` });
    // It always connects with wss:// (it sets the scheme itself): the TCP connection to the plain gateway is
    // made here, what TLS would carry is the same.
    const rt = new OpenAIRealtimeWS(
      {
        model: "gpt-realtime",
        options: {
          headers: { "x-tollgate-user-id": user },
          createConnection: (o: { port: number; host: string }) => connectTcp(o.port, o.host),
        },
      } as never,
      client,
    );
    const events: { type: string }[] = [];
    rt.on("event", (e) => events.push(e));
    const done = new Promise<void>((r) => rt.on("response.done", () => r()));
    await new Promise((r) => rt.socket.once("open", r));
    rt.send({ type: "response.create" });
    await done;
    rt.close();
    expect(events[0]).toEqual(JSON.parse(SESSION_CREATED));
    const captured = JSON.parse(RESPONSE_DONE) as { response: { usage: unknown } };
    expect(events.at(-1)).toMatchObject({
      type: "response.done",
      response: { usage: captured.response.usage },
    });
    const [rec] = await recordsOf(user);
    expect(rec).toMatchObject({ api: "openai.realtime", model: "gpt-realtime", cost_nanousd: COST });
  });

  it("an upstream that refuses the session answers the client itself (status, headers, body); one failed call recorded", async () => {
    const user = `rt-user-${++seq}`;
    const url = `${gw.url.replace("http:", "ws:")}/v1/realtime?model=refuse`;
    const ws = new WebSocket(url, { headers: { "x-tollgate-user-id": user } });
    const answer = await new Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>(
      (resolve) =>
        ws.once("unexpected-response", (_req, res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        }),
    );
    expect(answer.status).toBe(401);
    expect(answer.headers["x-request-id"]).toBe("req_mock");
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: "invalid_api_key" } });
    const [rec] = await recordsOf(user);
    // The refusal names its record, as any reply through the gateway does.
    expect(answer.headers["x-tollgate-event-id"]).toBe(rec!.event_id);
    expect(answer.headers["x-tollgate-cost-usd"]).toBe("0.00");
    expect(rec).toMatchObject({
      api: "openai.realtime",
      status: "error",
      http_status: 401,
      error_type: "invalid_request_error",
      cost_nanousd: 0n,
    });
  });

  it("a client that hangs up mid-response: the response is cancelled upstream and its usage still counted", async () => {
    const user = `rt-user-${++seq}`;
    const c = await connect({ "x-tollgate-user-id": user });
    c.ws.send(JSON.stringify({ type: "response.create", response: { metadata: { hold: "yes" } } }));
    await c.until(
      () => typesOf(c.got.text).includes("response.output_audio.delta"),
      "the response under way",
    );
    const seen = sessions[sessions.length - 1]!;
    c.ws.close(1000, "bye");
    expect(await seen.closed).toEqual({ code: 1000, reason: "bye" }); // after the cancel's answer
    expect(JSON.parse(seen.messages[1]!)).toMatchObject({ type: "response.cancel" });
    const [rec] = await recordsOf(user);
    expect(rec).toMatchObject({
      status: "error",
      error_type: "client_cancelled", // its status_details.reason
      cache_audio_read_tokens: 64,
      cost_nanousd: COST,
    });
  });

  it("a client whose connection fails mid-response (a malformed frame): the response is still cancelled and its exact cost counted", async () => {
    const user = `rt-user-${++seq}`;
    const c = await connect({ "x-tollgate-user-id": user });
    c.ws.on("error", () => {});
    c.ws.send(JSON.stringify({ type: "response.create", response: { metadata: { hold: "yes" } } }));
    await c.until(
      () => typesOf(c.got.text).includes("response.output_audio.delta"),
      "the response under way",
    );
    const seen = sessions[sessions.length - 1]!;
    c.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false }); // text that is not UTF-8: 1007
    await seen.closed;
    expect(seen.messages.map((m) => JSON.parse(m).type)).toContain("response.cancel");
    const [rec] = await recordsOf(user);
    expect(rec).toMatchObject({ error_type: "client_cancelled", cost_nanousd: COST });
  });

  it("a Realtime path spelt otherwise (a trailing slash, an escape) is metered all the same", async () => {
    const user = `rt-user-${++seq}`;
    const ws = new WebSocket(`${gw.url.replace("http:", "ws:")}/v1/%72ealtime/?model=gpt-realtime`, {
      headers: { "x-tollgate-user-id": user },
    });
    const done = new Promise<void>((resolve) =>
      ws.on("message", (d) => String(d).includes('"response.done"') && resolve()),
    );
    await new Promise((r) => ws.once("open", r));
    ws.send(JSON.stringify({ type: "response.create" }));
    await done;
    ws.close();
    const [rec] = await recordsOf(user);
    expect(rec).toMatchObject({ api: "openai.realtime", status: "ok", priced: true });
  });

  /** The gateway's answer to a handshake: its status and body when it refuses it, 101 when it opens. */
  const refusalOf = (ws: WebSocket) =>
    new Promise<{ status: number; body: string }>((resolve) => {
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      });
      ws.once("open", () => {
        ws.close();
        resolve({ status: 101, body: "" });
      });
    });

  it("a handshake with a bad Tollgate header is refused (400, naming it) before any upstream connection", async () => {
    const before = sessions.length;
    const ws = new WebSocket(`${gw.url.replace("http:", "ws:")}/v1/realtime?model=gpt-realtime`, {
      headers: { "x-tollgate-upstream": "no-such-route" },
    });
    const answer = await refusalOf(ws);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).error.message).toContain("x-tollgate-upstream");
    expect(sessions.length).toBe(before);
  });

  it("a session that names its model twice is refused (400, naming it) before any upstream connection", async () => {
    const before = sessions.length;
    // The gateway would hold it as the first; the upstream may run the second.
    const url = `${gw.url.replace("http:", "ws:")}/v1/realtime?model=gpt-realtime-mini&model=gpt-realtime`;
    const answer = await refusalOf(new WebSocket(url));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).error).toMatchObject({
      type: "invalid_request_error",
      code: "repeated_parameter",
      param: "model",
      message: expect.stringContaining('query parameter "model" is repeated'),
    });
    expect(sessions.length).toBe(before);
  });

  it("an upstream's close (code, reason) reaches the client as it gave it", async () => {
    const c = await connect();
    c.ws.send(JSON.stringify({ type: "tollgate.test.close", code: 4001, reason: "session expired" }));
    expect(await c.closed).toEqual({ code: 4001, reason: "session expired" });
  });

  it("a budget that a response's worst case would pass: the response is cancelled, the client told, its cost counted", async () => {
    const user = `rt-user-${++seq}`;
    // gpt-realtime's worst case is its 32,000-token window at the audio rate ($64/M): $2.048. The session
    // and its first response fit a $2.05 cap; with the first one's $0.0106 spent, the second does not.
    const created = await adminRequest(gw, "POST", "/api/budgets", {
      id: `rt-cap-${seq}`,
      scope: { user_id: user },
      window: "day",
      limit_usd: "2.05",
    });
    expect(created.status).toBe(201);
    const c = await connect({ "x-tollgate-user-id": user });
    c.ws.send(JSON.stringify({ type: "response.create" }));
    await c.until(() => typesOf(c.got.text).includes("response.done"), "the first response");
    c.ws.send(JSON.stringify({ type: "response.create", response: { metadata: { hold: "yes" } } }));
    await c.until(() => typesOf(c.got.text).filter((t) => t === "response.done").length === 2, "the cancel");
    const error = c.got.text.map((t) => JSON.parse(t)).find((e) => e.type === "error");
    expect(error).toMatchObject({ error: { type: "rate_limit_error", code: "budget_exceeded" } });
    const seen = sessions[sessions.length - 1]!;
    expect(seen.messages.map((m) => JSON.parse(m).type)).toContain("response.cancel");
    c.ws.close();
    await c.closed;
    for (let i = 0; i < 50 && (await recordsOf(user)).length < 2; i++) await sleep(20);
    const recs = await recordsOf(user);
    expect(recs.map((r) => r.status).sort()).toEqual(["error", "ok"]);
    const status = await adminRequest(gw, "GET", `/api/budgets/rt-cap-${seq}`);
    expect(status.json).toMatchObject({ spend_usd: expect.stringMatching(/^0\.02/) }); // 2 × $0.0106136
  });

  it("an agent run's responses are its LLM calls, the session itself none: max_llm_calls 2 lets two responses through", async () => {
    const user = `rt-user-${++seq}`;
    const run = `rt-run-${seq}`;
    expect((await adminRequest(gw, "PUT", "/api/agents/rt-voice", { max_llm_calls: 2 })).status).toBeLessThan(
      300,
    );
    const c = await connect({
      "x-tollgate-user-id": user,
      "x-tollgate-agent-run-id": run,
      "x-tollgate-agent-type": "rt-voice",
    });
    for (let i = 1; i <= 2; i++) {
      c.ws.send(JSON.stringify({ type: "response.create" }));
      await c.until(
        () => typesOf(c.got.text).filter((t) => t === "response.done").length === i,
        `response ${i}`,
      );
    }
    expect(typesOf(c.got.text)).not.toContain("error");
    c.ws.close();
    await c.closed;
    for (let i = 0; i < 50 && (await recordsOf(user)).length < 2; i++) await sleep(20);
    expect((await recordsOf(user)).map((r) => r.status)).toEqual(["ok", "ok"]);
    const usage = (await adminRequest(gw, "GET", `/api/runs/${run}`)).json;
    expect(usage).toMatchObject({ usage: { llm_calls: 2 } });
    expect(usage.killed ?? null).toBeNull();
    // A killed run still has its sessions refused before any upstream connection.
    await adminRequest(gw, "POST", `/api/runs/${run}/kill`);
    const ws = new WebSocket(`${gw.url.replace("http:", "ws:")}/v1/realtime?model=gpt-realtime`, {
      headers: { "x-tollgate-agent-run-id": run, "x-tollgate-agent-type": "rt-voice" },
    });
    const status = await new Promise<number>((resolve) =>
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode!)),
    );
    expect(status).toBe(429);
  });

  it("a handshake the upstream does not answer in time (504) or cannot take (502) names the failed call it recorded, as an HTTP call's does", async () => {
    const unreachable = await startTestGateway("http://127.0.0.1:9");
    try {
      for (const [via, headers, status, errorType] of [
        [gw, { "x-tollgate-timeout-ms": "50" }, 504, "timeout"],
        [unreachable, {}, 502, "connection_error"],
      ] as const) {
        const user = `rt-user-${++seq}`;
        const url = `${via.url.replace("http:", "ws:")}/v1/realtime?model=slow`;
        const ws = new WebSocket(url, { headers: { "x-tollgate-user-id": user, ...headers } });
        const answer = await new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve) =>
          ws.once("unexpected-response", (_req, res) => {
            res.resume();
            resolve({ status: res.statusCode!, headers: res.headers });
          }),
        );
        expect(answer.status).toBe(status);
        const [rec] = await recordsOf(user, via);
        expect(rec).toMatchObject({ status: "error", error_type: errorType, cost_nanousd: 0n });
        expect(answer.headers["x-tollgate-event-id"]).toBe(rec!.event_id);
        expect(answer.headers["x-tollgate-cost-usd"]).toBe("0.00");
      }
    } finally {
      await unreachable.stop();
    }
  });

  it("a session over a spent budget is refused before any upstream connection (429, the gateway's error)", async () => {
    const user = `rt-user-${++seq}`;
    await adminRequest(gw, "POST", "/api/budgets", {
      id: `rt-small-${seq}`,
      scope: { user_id: user },
      window: "day",
      limit_usd: "1.00",
    });
    const before = sessions.length;
    const url = `${gw.url.replace("http:", "ws:")}/v1/realtime?model=gpt-realtime`;
    const ws = new WebSocket(url, { headers: { "x-tollgate-user-id": user } });
    const status = await new Promise<number>((resolve) =>
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode!)),
    );
    expect(status).toBe(429);
    expect(sessions.length).toBe(before);
  });

  it("a WebSocket to another /v1 path is relayed, not metered; a request that is not a handshake is refused", async () => {
    const user = `rt-user-${++seq}`;
    const url = `${gw.url.replace("http:", "ws:")}/v1/realtime/other?x=1`;
    const ws = new WebSocket(url, { headers: { "x-tollgate-user-id": user } });
    await new Promise((r) => ws.once("open", r));
    ws.send(Buffer.from([9, 8, 7]), { binary: true });
    const echoed = await new Promise<Buffer>((r) => ws.on("message", (d, bin) => bin && r(d as Buffer)));
    expect(echoed).toEqual(Buffer.from([9, 8, 7]));
    ws.close();
    const res = await fetch(`${gw.url}/v1/realtime?model=gpt-realtime`, {
      headers: { connection: "upgrade", upgrade: "websocket" },
    }).catch(() => null);
    expect(res?.status ?? 400).toBe(400);
    await gw.runtime.recorder.flush();
    expect((await gatewayRecords(gw.runtime)).filter((r) => r.user_id === user)).toEqual([]);
  });

  it("an input transcription is a call of its transcription model, priced by its usage", async () => {
    const user = `rt-user-${++seq}`;
    const c = await connect({ "x-tollgate-user-id": user }, "intent=transcription");
    c.ws.send(TRANSCRIBE_UPDATE); // the client names the model; the server's session.updated would echo it
    await c.until(() => c.got.text.length === 3, "the transcription");
    expect(c.got.text).toEqual([TRANSCRIPTION_SESSION, TRANSCRIPTION_DELTA, TRANSCRIBED]);
    const [rec, ...more] = await recordsOf(user);
    expect(more).toEqual([]); // the delta has no usage: counted once
    // gpt-4o-mini-transcribe: 16 audio tokens at $3/M + 8 output at $5/M = 48 + 40 micro-USD.
    expect(rec).toMatchObject({
      api: "openai.realtime",
      model: "gpt-4o-mini-transcribe",
      model_requested: "gpt-4o-mini-transcribe",
      request_id: "item_…",
      input_audio_tokens: 16,
      output_tokens: 8,
      cost_nanousd: 88_000n,
      priced: true,
    });
    c.ws.close();
  });

  it("a whisper-1 transcription (usage in seconds) is recorded by its audio's length, at $0.36 an hour", async () => {
    const user = `rt-user-${++seq}`;
    const c = await connect({ "x-tollgate-user-id": user }, "intent=transcription");
    c.ws.send(
      JSON.stringify({
        type: "session.update",
        session: { input_audio_transcription: { model: "whisper-1" } },
      }),
    );
    await c.until(() => c.got.text.length === 2, "the transcription");
    const [rec] = await recordsOf(user);
    // The captured event's 2 s: $0.0002.
    expect(rec).toMatchObject({
      model: "whisper-1",
      status: "ok",
      priced: true,
      input_audio_ms: 2_000,
      cost_input_audio_nanousd: 200_000n,
      cost_nanousd: 200_000n,
    });
    expect(rec!.usage_raw).toEqual({ type: "duration", seconds: 2 });
    c.ws.close();
  });
});

describe("a Realtime session behind an egress proxy", () => {
  it("goes through the proxy's tunnel (HTTP_PROXY for ws://), or straight to a NO_PROXY host", async () => {
    const proxy = await startConnectProxy();
    const port = new URL(upstreamOrigin).port;
    const through = await startTestGateway(upstreamOrigin, {
      egressProxy: { httpProxy: proxy.url, httpsProxy: null, noProxy: "example.internal" },
    });
    const direct = await startTestGateway(upstreamOrigin, {
      egressProxy: { httpProxy: proxy.url, httpsProxy: null, noProxy: `127.0.0.1:${port}` },
    });
    try {
      for (const g of [through, direct]) {
        const ws = new WebSocket(`${g.url.replace("http:", "ws:")}/v1/realtime?model=gpt-realtime`);
        const first = await new Promise<string>((resolve, reject) => {
          ws.once("message", (d) => resolve(d.toString()));
          ws.once("error", reject);
        });
        expect(first).toBe(SESSION_CREATED);
        ws.close();
      }
      expect(proxy.tunnels.map((t) => t.target)).toEqual([`127.0.0.1:${port}`]); // the first gateway's only
    } finally {
      await through.stop();
      await direct.stop();
      await proxy.close();
    }
  });
});

/** A handshake written by hand on a raw socket (what a library would not send); resolves once connected. */
async function rawHandshake(path: string, method = "GET", extra = ""): Promise<Socket> {
  const { port } = new URL(gw.url);
  const socket = connectTcp(Number(port), "127.0.0.1");
  await new Promise((r) => socket.once("connect", r));
  socket.write(
    `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n` +
      `sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n${extra}\r\n`,
  );
  return socket;
}

/** What a raw socket got until it closed (or `ms` passed). */
function rawAnswer(socket: Socket, ms = 3_000): Promise<string> {
  let got = "";
  socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(got), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

/** Within `ms`, or "pending". */
const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, sleep(ms).then(() => "pending" as const)]);

describe("a Realtime session at awkward moments", () => {
  it("a client whose connection is reset while the upstream's handshake is under way does not crash the gateway", async () => {
    const before = sessions.length;
    const socket = await rawHandshake("/v1/realtime?model=slow");
    await sleep(50); // the gateway is waiting for the upstream's handshake
    socket.resetAndDestroy();
    await sleep(SLOW_MS + 200);
    // The gateway is still up, and let go of the upstream it was opening for nobody.
    const c = await connect();
    c.ws.close();
    await c.closed;
    const opened = sessions.slice(before).filter((s) => s.url.includes("model=slow"));
    for (const s of opened) expect(await within(s.closed, 2_000)).not.toBe("pending");
  });

  it.each([
    { what: "a POST", method: "POST", extra: "", half: false },
    {
      what: "a malformed subprotocol list",
      method: "GET",
      extra: "sec-websocket-protocol: realtime,,x\r\n",
      half: false,
    },
    { what: "a half-closed client", method: "GET", extra: "", half: true },
  ])(
    "a handshake the gateway's own WebSocket server refuses ($what) is answered and lets go of the upstream",
    async ({ method, extra, half }) => {
      const before = sessions.length;
      const socket = await rawHandshake("/v1/realtime?model=slow", method, extra);
      if (half) socket.end(); // the client has nothing more to say: the gateway cannot answer with a session
      const answer = await rawAnswer(socket);
      expect(answer).not.toMatch(/^HTTP\/1\.1 101/);
      socket.destroy();
      await sleep(100);
      for (const s of sessions.slice(before)) expect(await within(s.closed, 2_000)).not.toBe("pending");
    },
  );

  it("a shutdown with a session whose client does not answer (a dead peer) ends within the grace period", async () => {
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const own = await startTestGateway(upstreamUrl);
    const { port } = new URL(own.url);
    const socket = connectTcp(Number(port), "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    socket.write(
      "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n" +
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nx-tollgate-user-id: rt-dead-peer\r\n\r\n",
    );
    await new Promise((r) => socket.once("data", r)); // the 101 (and session.created)
    socket.pause(); // the peer is gone: nothing is read, nothing answered
    await sleep(100);
    const t0 = Date.now();
    const stopped = own.stop().then(() => Date.now() - t0);
    const took = await within(stopped, 20_000);
    socket.destroy();
    expect(took).not.toBe("pending");
    expect(took).toBeLessThan(12_000);
  }, 30_000);

  it("a shutdown while a session's upstream handshake is under way ends that session too, and does not hang", async () => {
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const own = await startTestGateway(upstreamUrl);
    const before = sessions.length;
    const ws = new WebSocket(`${own.url.replace("http:", "ws:")}/v1/realtime?model=slow`, {
      headers: { authorization: "Bearer sk-test-realtime" },
    });
    ws.on("error", () => {});
    const clientClosed = new Promise((r) => ws.once("close", r));
    await sleep(50); // the gateway waits for the upstream's handshake
    const t0 = Date.now();
    const stopped = own.stop().then(() => Date.now() - t0);
    expect(await within(stopped, 8_000)).toBeLessThan(3_000);
    expect(await within(clientClosed, 1_000)).not.toBe("pending");
    await sleep(SLOW_MS);
    for (const s of sessions.slice(before)) expect(await within(s.closed, 2_000)).not.toBe("pending");
  });
});

describe("a Realtime session whose client vanished without closing", () => {
  it("is ended by the heartbeat: its client dropped, the upstream closed, its response under way counted", async () => {
    const own = await startTestGateway(upstreamOrigin, { wsHeartbeatMs: 150 });
    try {
      const user = `rt-user-${++seq}`;
      // autoPong off: a client whose process froze, or whose network went away, answers no ping.
      const ws = new WebSocket(`${own.url.replace("http:", "ws:")}/v1/realtime?model=gpt-realtime`, {
        headers: { "x-tollgate-user-id": user },
        autoPong: false,
      });
      const texts: string[] = [];
      ws.on("message", (d) => texts.push(String(d)));
      await new Promise((r) => ws.once("open", r));
      ws.send(JSON.stringify({ type: "response.create", response: { metadata: { hold: "yes" } } }));
      for (let i = 0; i < 100 && !texts.some((t) => t.includes('"response.created"')); i++) await sleep(10);
      const seen = sessions[sessions.length - 1]!;
      const closed = await Promise.race([seen.closed, sleep(3_000).then(() => "still open" as const)]);
      expect(closed).not.toBe("still open");
      expect(seen.messages.map((m) => JSON.parse(m).type)).toContain("response.cancel");
      const [rec] = await recordsOf(user, own);
      expect(rec).toMatchObject({ error_type: "client_cancelled", cost_nanousd: COST });
      ws.terminate();
    } finally {
      await own.stop();
    }
  });
});
