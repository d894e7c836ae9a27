// The gateway against upstream answers that the fixture mock does not give, written byte by byte on a raw
// socket: informational 1xx answers before the real one, a retryable answer whose body breaks off, a long
// stream for clients that read slowly, stall or leave, and a client's `Expect: 100-continue`.
import { once } from "node:events";
import { type ClientRequest, type IncomingMessage, request } from "node:http";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import { formatUsd } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANTHROPIC_HEADERS, gatewayRecords, rawRequest, startTestGateway } from "./helpers.js";
import { FX, fixture } from "./mock-upstream.js";

const OK_BODY = fixture(FX.chat);
const PROXY_407_BODY = JSON.stringify({ error: { type: "proxy_error", message: "proxy credentials" } });
const OK = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(OK_BODY)}\r\n\r\n${OK_BODY}`;

/** What each scenario writes for its n-th request (1-based); a function may write later or close. */
const SCENARIOS: Record<string, (sock: Socket, n: number) => void> = {
  // An early hint, then the answer.
  "hint-then-ok": (sock) => {
    sock.write("HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n");
    setTimeout(() => sock.write(OK), 20);
  },
  // An early hint, then the connection drops: nothing was answered, so it is retried.
  "hint-then-close": (sock, n) => {
    if (n > 1) return void sock.write(OK);
    sock.write("HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n");
    setTimeout(() => sock.destroy(), 20);
  },
  // A 503 whose body breaks off after 9 of its 100 bytes: retryable all the same.
  "503-cut": (sock, n) => {
    if (n > 1) return void sock.write(OK);
    sock.write(
      'HTTP/1.1 503 Service Unavailable\r\nretry-after: 0\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"error":',
    );
    setTimeout(() => sock.destroy(), 20);
  },
  ok: (sock) => void sock.write(OK),
  // The provider advertises HTTP/3 on its own origin.
  "alt-svc": (sock) => void sock.write(OK.replace("\r\n\r\n", '\r\nalt-svc: h3=":443"; ma=86400\r\n\r\n')),
  // A proxy in front of the upstream asks for its own credentials: a challenge for the gateway's hop.
  "proxy-407": (sock) =>
    void sock.write(
      `HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="upstream-hop"\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(PROXY_407_BODY)}\r\n\r\n${PROXY_407_BODY}`,
    ),
  // The answer gzipped, although the gateway asked for identity.
  gzip: (sock) => {
    const body = gzipSync(OK_BODY);
    sock.write(
      `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: ${body.length}\r\n\r\n`,
    );
    sock.write(body);
  },
  // A HEAD answer: the resource's length, no body.
  head: (sock) =>
    void sock.write("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1234\r\n\r\n"),
  "no-content": (sock) => void sock.write("HTTP/1.1 204 No Content\r\n\r\n"),
  // A conditional download the client has already; a redirect elsewhere.
  "not-modified": (sock) => void sock.write('HTTP/1.1 304 Not Modified\r\netag: "f-1"\r\n\r\n'),
  moved: (sock) =>
    void sock.write(
      "HTTP/1.1 307 Temporary Redirect\r\nlocation: https://files.example/f-1\r\ncontent-length: 0\r\n\r\n",
    ),
  "status-600": (sock) => void sock.write("HTTP/1.1 600 Unheard Of\r\ncontent-length: 2\r\n\r\n{}"),
  // A stream that reports an error event and then ends cleanly, as the providers' do when overloaded.
  "anthropic-error-stream": (sock) => {
    const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
    sock.write(
      `HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n${chunk(
        'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":9,"output_tokens":1}}}\n\n',
      )}${chunk('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')}0\r\n\r\n`,
    );
  },
  // The short stream, gzipped although the gateway asked for identity, in two pieces.
  "gzip-stream": (sock) => {
    const chunk = (b: Buffer) =>
      Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from("\r\n")]);
    const body = gzipSync(`${bigEvent(0)}${SMALL_USAGE}data: [DONE]\n\n`);
    const cut = Math.floor(body.length / 2);
    sock.write(
      "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    sock.write(chunk(body.subarray(0, cut)));
    setTimeout(() => sock.write(Buffer.concat([chunk(body.subarray(cut)), Buffer.from("0\r\n\r\n")])), 20);
  },
  // A short SSE stream whose content holds bytes that are not UTF-8, cut inside a 4-byte character.
  "stray-bytes-stream": (sock) => {
    const chunk = (b: Buffer) =>
      Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from("\r\n")]);
    const body = Buffer.concat([STRAY_EVENT, Buffer.from(`${SMALL_USAGE}data: [DONE]\n\n`)]);
    const cut = STRAY_EVENT.indexOf(0xf0) + 2;
    sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
    sock.write(chunk(body.subarray(0, cut)));
    setTimeout(() => sock.write(Buffer.concat([chunk(body.subarray(cut)), Buffer.from("0\r\n\r\n")])), 20);
  },
  // A short SSE stream with its usage chunk.
  "small-stream": (sock) => {
    const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
    sock.write(
      `HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n${chunk(bigEvent(0))}${chunk(SMALL_USAGE)}${chunk("data: [DONE]\n\n")}0\r\n\r\n`,
    );
  },
  // A long stream on a connection that closes after it (connection: close, no framing): ~33 MB, then a
  // reset. undici cannot hold such a connection paused (it asserts, crashing the process, when one ends).
  "close-stream": (sock) => {
    const state = { waiting: false, closed: new Promise<void>((r) => sock.once("close", () => r())) };
    bigStreams.push(state);
    sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n");
    let i = 0;
    const more = () => {
      while (i < 2 * BIG_EVENTS) if (!sock.write(bigEvent(i++))) return void sock.once("drain", more);
      sock.resetAndDestroy();
    };
    more();
  },
  // A stream's head, then nothing: the model never starts (or its first bytes are lost).
  "stream-head-stall": (sock) =>
    void sock.write(
      "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    ),
  // The same, then the connection resets.
  "stream-head-reset": (sock) => {
    sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
    setTimeout(() => sock.resetAndDestroy(), 50);
  },
  // A stream of ~8 MB on a connection that closes after it, whole: under the 16 MB the gateway buffers of
  // such a stream for a slow client.
  "close-8mb": (sock) => {
    sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n");
    let i = 0;
    const more = () => {
      while (i < 1_000) if (!sock.write(bigEvent(i++))) return void sock.once("drain", more);
      sock.end(`${SMALL_USAGE}data: [DONE]\n\n`);
    };
    more();
  },
  // A stream on a connection that closes after it, cut off after two events: no usage, no [DONE]. The
  // close ends such a body on the wire, so nothing but the missing end marker says it was cut.
  "close-cut": (sock) => {
    sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n");
    sock.end(`${bigEvent(0)}${bigEvent(1)}`);
  },
  // An Anthropic stream whose executor consulted its advisor, cut off after its final message_delta (which
  // carries the advisor's consultation, usage.iterations) and before message_stop.
  "anthropic-advisor-close-cut": (sock) => {
    const ev = (type: string, data: object) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n");
    const start = {
      id: "msg_adv",
      model: "claude-sonnet-4-6",
      usage: { input_tokens: 50, output_tokens: 1 },
    };
    const advice = {
      type: "advisor_message",
      model: "claude-opus-4-6",
      input_tokens: 1000,
      output_tokens: 200,
    };
    const usage = {
      input_tokens: 50,
      output_tokens: 30,
      iterations: [{ type: "message", input_tokens: 50, output_tokens: 30 }, advice],
    };
    let text = ev("message_start", { message: start });
    text += ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
    text += ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: "advised" } });
    text += ev("content_block_stop", { index: 0 });
    text += ev("message_delta", { delta: { stop_reason: "end_turn" }, usage });
    sock.end(text);
  },
  // An Anthropic stream on a connection that closes after it, cut off before message_stop: its usage so
  // far came up front (message_start: 1 output token), then 40 text deltas.
  "anthropic-close-cut": (sock) => {
    const ev = (type: string, data: object) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n");
    const start = {
      id: "msg_cut",
      model: "claude-sonnet-4-5",
      usage: { input_tokens: 50, output_tokens: 1 },
    };
    let text = ev("message_start", { message: start });
    text += ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
    for (let i = 0; i < 40; i++)
      text += ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: "word " } });
    sock.end(text);
  },
  // A file download as an HTTP/1.0 server sends it (Python's http.server does): a length, no connection
  // header, and the connection closes after the body. undici would assert, crashing the process, were such
  // a connection paused when it ends.
  "http10-download": (sock) => {
    sock.write(
      `HTTP/1.0 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${DOWNLOAD.length}\r\n\r\n`,
    );
    sock.end(DOWNLOAD);
  },
  // An answer with 40 KB of headers (a provider's front may send as much; Node's and undici's limit is 16).
  "big-headers": (sock) =>
    void sock.write(
      `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-trace: ${"t".repeat(40_000)}\r\ncontent-length: ${Buffer.byteLength(OK_BODY)}\r\n\r\n${OK_BODY}`,
    ),
  // A big download from an HTTP/1.1 server that keeps alive without saying so (Go's, uvicorn's): a length,
  // no connection header, written as fast as the client takes it.
  "http11-big-download": (sock) => {
    sock.write(
      `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${BIG_DOWNLOAD.length}\r\n\r\n`,
    );
    sock.write(BIG_DOWNLOAD);
  },
  // The same from an HTTP/1.0 server, which closes after it.
  "http10-big-download": (sock) => {
    sock.write(
      `HTTP/1.0 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${BIG_DOWNLOAD.length}\r\n\r\n`,
    );
    sock.end(BIG_DOWNLOAD);
  },
  // A "chat completion" of 300 MB: more than the gateway holds whole.
  huge: (sock) => {
    const total = 300 * 1024 * 1024;
    const piece = Buffer.alloc(1024 * 1024, 0x20);
    sock.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${total}\r\n\r\n`);
    let sent = 0;
    const more = () => {
      while (sent < total && !sock.destroyed) {
        sent += piece.length;
        if (!sock.write(piece)) return void sock.once("drain", more);
      }
    };
    more();
  },
  // A long SSE stream (BIG_EVENTS events of ~8 KB, then usage and [DONE]), written as fast as the socket takes it.
  "big-stream": (sock) => {
    const state = { waiting: false, closed: new Promise<void>((r) => sock.once("close", () => r())) };
    bigStreams.push(state);
    sock.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
    const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
    let i = 0;
    const more = () => {
      state.waiting = false;
      while (i < BIG_EVENTS)
        if (!sock.write(chunk(bigEvent(i++)))) {
          state.waiting = true;
          return void sock.once("drain", more);
        }
      sock.write(`${chunk(BIG_USAGE)}${chunk("data: [DONE]\n\n")}0\r\n\r\n`);
    };
    more();
  },
};
const SMALL_USAGE = `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", model: "gpt-4.1-nano", choices: [], usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 } })}\n\n`;

/** A chunk whose content is a lone 0xff, a broken pair, Latin-1's é, then an emoji (4 bytes). */
const STRAY_EVENT = Buffer.concat([
  Buffer.from(
    'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4.1-nano","choices":[{"index":0,"delta":{"content":"',
  ),
  Buffer.from([0xff, 0xc3, 0x28, 0xe9]),
  Buffer.from('\u{1f600}"}}],"usage":null}\n\n'),
]);

/** Each big-stream request's upstream side: whether it waits for the gateway to read, and its connection's close. */
const bigStreams: { waiting: boolean; closed: Promise<void> }[] = [];
const BIG_EVENTS = 2_000;
const bigEvent = (i: number) =>
  `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", model: "gpt-4.1-nano", choices: [{ index: 0, delta: { content: `${i}:${"x".repeat(8_000)}` } }] })}\n\n`;
const BIG_USAGE = `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", model: "gpt-4.1-nano", choices: [], usage: { prompt_tokens: 9, completion_tokens: 2_000, total_tokens: 2_009 } })}\n\n`;

let upstream: Server;
const seen: { scenario: string; head: string }[] = [];
let gw: Awaited<ReturnType<typeof startTestGateway>>;

beforeAll(async () => {
  upstream = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on("error", () => {});
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1");
        const length = Number(/^content-length: *(\d+)/im.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        buf = buf.subarray(end + 4 + length);
        const scenario = /^x-scenario: *(\S+)/im.exec(head)?.[1] ?? "ok";
        seen.push({ scenario, head });
        SCENARIOS[scenario]!(sock, seen.filter((s) => s.scenario === scenario).length);
      }
    });
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  gw = await startTestGateway(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, {
    timeoutMs: 1000,
  });
});
afterAll(async () => {
  await gw?.stop();
  upstream?.close();
});

const chat = JSON.stringify({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] });

/** A download of `mb` MB, in a pattern that shows a byte out of place. */
const download = (mb: number) => {
  const b = Buffer.alloc(mb * 1024 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7 + (i >> 12)) & 0xff;
  return b;
};
const DOWNLOAD = download(6);
const BIG_DOWNLOAD = download(40);

function send(
  scenario: string,
  headers: Record<string, string> = {},
  body: string | Buffer = chat,
): Promise<Response> {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: "Bearer sk-test",
      "x-scenario": scenario,
      ...headers,
    },
    body,
  });
}

/** The record of the call a fetch reply answered. */
async function recordOfReply(res: Response) {
  return (await gatewayRecords(gw.runtime)).find(
    (r) => r.event_id === res.headers.get("x-tollgate-event-id"),
  );
}

/** [attempt, http_status, error_type] of every attempt of the call a reply answered. */
async function attemptsOf(res: Response) {
  const records = await gatewayRecords(gw.runtime);
  const answered = records.find((r) => r.event_id === res.headers.get("x-tollgate-event-id"))!;
  return records
    .filter((r) => r.request_id === answered.request_id)
    .sort((a, b) => a.attempt - b.attempt)
    .map((r) => [r.attempt, r.http_status, r.error_type]);
}

const STREAM_CHAT = JSON.stringify({
  model: "gpt-4.1-nano",
  messages: [{ role: "user", content: "hi" }],
  stream: true,
  stream_options: { include_usage: true },
});

/** A big-stream call, its reply taken at its headers and paused: the test decides when (if ever) to read. */
function startBigStream(
  headers: Record<string, string> = {},
): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = request(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: "Bearer sk-test",
        "x-scenario": "big-stream",
        ...headers,
      },
    });
    req.on("response", (res) => {
      res.pause();
      resolve({ req, res });
    });
    req.on("error", reject);
    req.end(STREAM_CHAT);
  });
}

/** The record of the call a reply answered, once the gateway has written it (a cut stream's comes late). */
async function recordOf(res: IncomingMessage) {
  const eventId = res.headers["x-tollgate-event-id"];
  for (let i = 0; i < 100; i++) {
    const rec = (await gatewayRecords(gw.runtime)).find((r) => r.event_id === eventId);
    if (rec) return rec;
    await sleep(50);
  }
  throw new Error(`no record of ${eventId}`);
}

describe("gateway against a raw upstream", () => {
  it("a 103 Early Hints before the answer: the answer is relayed and recorded, not the hint", async () => {
    const res = await send("hint-then-ok");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(OK_BODY);
    expect(await attemptsOf(res)).toEqual([[1, 200, null]]);
  });

  it("a 103 and then a dropped connection: nothing was answered, so the retry answers", async () => {
    const res = await send("hint-then-close", { "x-tollgate-retries": "1" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(OK_BODY);
    expect(await attemptsOf(res)).toEqual([
      [1, null, "connection_error"],
      [2, 200, null],
    ]);
  });

  it("a 503 whose body breaks off is retried as a 503 (its body only names the error)", async () => {
    const res = await send("503-cut", { "x-tollgate-retries": "1" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(OK_BODY);
    expect(await attemptsOf(res)).toEqual([
      [1, 503, "http_503"],
      [2, 200, null],
    ]);
  });

  it("a client that reads slowly gets a 16 MB stream whole and in order; the upstream waits for it", async () => {
    const { res } = await startBigStream();
    // Nothing read for a while: the gateway's writes back up, and it pauses the upstream.
    await sleep(300);
    const parts: Buffer[] = [];
    res.on("data", (d: Buffer) => parts.push(d));
    res.resume();
    await once(res, "end");
    let expected = "";
    for (let i = 0; i < BIG_EVENTS; i++) expected += bigEvent(i);
    expect(Buffer.concat(parts).toString()).toBe(`${expected}${BIG_USAGE}data: [DONE]\n\n`);
    const rec = await recordOf(res);
    expect(rec).toMatchObject({ status: "ok", output_tokens: 2_000, stream: true });
  });

  it("a client that reads nothing for a whole timeout is let go, and so is the upstream paused for it", async () => {
    const { req, res } = await startBigStream({ "x-tollgate-timeout-ms": "300" });
    const upstreamSide = bigStreams.at(-1)!;
    await upstreamSide.closed; // the gateway cancelled the upstream request
    const rec = await recordOf(res);
    expect(rec).toMatchObject({
      status: "error",
      http_status: 200,
      error_type: "client_stalled",
      cost_source: "estimated",
    });
    // Billed as far as it went: the events the gateway read before the client stalled, not all of them.
    expect(rec.output_tokens).toBeGreaterThan(0);
    expect(rec.output_tokens).toBeLessThan(BIG_EVENTS);
    req.destroy();
  });

  it("a client that leaves while the upstream is paused for it: recorded as gone, and the gateway goes on", async () => {
    const { req, res } = await startBigStream();
    const upstreamSide = bigStreams.at(-1)!;
    while (!upstreamSide.waiting) await sleep(10); // the gateway has stopped reading the upstream
    req.destroy();
    await upstreamSide.closed;
    const rec = await recordOf(res);
    expect(rec).toMatchObject({
      status: "error",
      error_type: "client_disconnected",
      cost_source: "estimated",
    });
    const next = await send("ok");
    expect(await next.text()).toBe(OK_BODY);
  });

  it("a stream whose connection closes after it is not paused for a client that reads nothing: given up past 16 MB", async () => {
    const { req, res } = await startBigStream({ "x-scenario": "close-stream" });
    await bigStreams.at(-1)!.closed; // the gateway cancelled the upstream request
    const rec = await recordOf(res);
    expect(rec).toMatchObject({ status: "error", error_type: "client_stalled", cost_source: "estimated" });
    // It read on (~16 MB of ~8 KB events) rather than pausing the upstream after 64 KB.
    expect(rec.output_tokens).toBeGreaterThan(1_500);
    req.destroy();
    const next = await send("ok"); // and the process is alive
    expect(await next.text()).toBe(OK_BODY);
  });

  it("a client that reads nothing of a stream's last bytes is let go after the timeout, though the upstream had ended", async () => {
    const { res } = await startBigStream({ "x-scenario": "close-8mb" });
    const rec = await recordOf(res); // the upstream's whole stream came: recorded at its exact cost
    expect(rec).toMatchObject({ status: "ok", output_tokens: 2 });
    // Megabytes of it wait in the gateway for a client that takes none: let go after the 1 s timeout, as a
    // held reply's client is, not kept for as long as the client keeps its connection.
    await sleep(2_500);
    let bytes = 0;
    res.on("data", (d: Buffer) => {
      bytes += d.length;
    });
    res.resume();
    const ended = await Promise.race([
      once(res, "end").then(() => "whole"),
      once(res, "aborted").then(() => "let go"),
      once(res, "error").then(() => "let go"),
    ]);
    expect(ended).toBe("let go");
    expect(bytes).toBeLessThan(8_000_000);
  });

  it("40 KB of headers each way (a big cookie, a chatty upstream) pass as they would directly", async () => {
    const cookie = `session=${"c".repeat(40_000)}`;
    // A client that reads such headers (Node's own stops at 16 KB).
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        maxHeaderSize: 64 * 1024,
        headers: { "content-type": "application/json", "x-scenario": "big-headers", cookie },
      });
      req.on("response", resolve).on("error", reject);
      req.end(chat);
    });
    const parts: Buffer[] = [];
    for await (const d of res) parts.push(d as Buffer);
    expect(res.statusCode).toBe(200);
    expect(res.headers["x-trace"]).toBe("t".repeat(40_000));
    expect(Buffer.concat(parts).toString()).toBe(OK_BODY);
    expect(seen.at(-1)!.head).toContain(cookie);
  });

  /** A download through the gateway by a client that first reads nothing for `idleMs`: what it got. */
  async function slowDownload(scenario: string, idleMs: number): Promise<Buffer> {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(`${gw.url}/v1/files/file-abc/content`, {
        headers: { authorization: "Bearer sk-test", "x-scenario": scenario },
      });
      req.on("response", (r) => {
        r.pause(); // the gateway's writes back up
        resolve(r);
      });
      req.on("error", reject);
      req.end();
    });
    await sleep(idleMs);
    const parts: Buffer[] = [];
    res.on("data", (d: Buffer) => parts.push(d));
    res.resume();
    await once(res, "end");
    return Buffer.concat(parts);
  }

  it("downloads with a length and no connection header, to a client that reads slowly: relayed whole, the process alive", async () => {
    // HTTP/1.0, closed after: 6 MB, never paused (undici would crash on its end were it paused).
    for (let round = 0; round < 3; round++)
      expect(Buffer.compare(await slowDownload("http10-download", 150), DOWNLOAD)).toBe(0);
    // 40 MB: paused for the slow client until its last 12 MB, which are buffered; from HTTP/1.1 (kept alive
    // silently) and HTTP/1.0 (closed after) alike. Idle well within the gateway's 1 s timeout for a client
    // that reads nothing (at 1 s a loaded machine let the gateway's timer fire first).
    expect(Buffer.compare(await slowDownload("http11-big-download", 400), BIG_DOWNLOAD)).toBe(0);
    expect(Buffer.compare(await slowDownload("http10-big-download", 400), BIG_DOWNLOAD)).toBe(0);
    const next = await send("ok"); // and the process is alive
    expect(await next.text()).toBe(OK_BODY);
  });

  it("waiting for an upstream connection: a call whose client leaves is never sent nor billed; past the timeout, 504", async () => {
    // One connection per upstream, held by a stream its client does not read.
    const one = await startTestGateway(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, {
      timeoutMs: 5000,
      upstreamConnections: 1,
    });
    /** A call on `one` (a stream unless `body` says otherwise), its reply (if any) left unread. */
    const streamCall = (headers: Record<string, string>, body = STREAM_CHAT) => {
      const req = request(`${one.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sk-test", ...headers },
      });
      req.on("response", (r) => r.pause());
      req.on("error", () => {});
      req.end(body);
      return req;
    };
    /** Takes the one connection with a stream nobody reads; resolves once the upstream waits for it. */
    const holdConnection = async () => {
      const before = bigStreams.length;
      const held = streamCall({ "x-scenario": "big-stream" });
      while (bigStreams.length === before || !bigStreams.at(-1)!.waiting) await sleep(10);
      return held;
    };
    try {
      // A stream, then a call whose reply is held whole (no retries: its client is watched only while queued).
      for (const [scenario, body] of [
        ["small-stream", STREAM_CHAT],
        ["ok", chat],
      ]) {
        const held = await holdConnection();
        const seenBefore = seen.length;
        const queued = streamCall(
          { "x-scenario": scenario!, "x-tollgate-meta-case": `queued-${scenario}` },
          body,
        );
        await sleep(200);
        queued.destroy(); // gives up while the call waits for the one connection
        await sleep(100);
        held.destroy(); // frees it: the queued call starts, and is dropped at once
        await bigStreams.at(-1)!.closed;
        await sleep(300);
        expect(seen.slice(seenBefore).map((s) => s.scenario)).toEqual([]);
        const records = await gatewayRecords(one.runtime);
        expect(records.filter((r) => r.metadata.case === `queued-${scenario}`)).toEqual([]);
      }
      // A call that waits longer than its upstream timeout for the connection: 504 then, never sent.
      const heldAgain = await holdConnection();
      const seenNow = seen.length;
      const started = Date.now();
      const late = await fetch(`${one.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer sk-test",
          "x-tollgate-timeout-ms": "300",
        },
        body: chat,
      });
      expect(late.status).toBe(504);
      expect(((await late.json()) as { error: { message: string } }).error.message).toBe(
        "upstream did not answer within 300 ms", // it waited in the gateway's pool: no connect failure
      );
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(seen.length).toBe(seenNow);
      heldAgain.destroy();
    } finally {
      await one.stop();
    }
  });

  it("a stream whose head came but none of its body: answered 504 (or 502 when it broke) naming its record, billed estimated", async () => {
    for (const [scenario, status, message] of [
      ["stream-head-stall", 504, "upstream body did not arrive within 300 ms"],
      ["stream-head-reset", 502, "upstream failed while sending the body"],
    ] as const) {
      const res = await send(scenario, { "x-tollgate-timeout-ms": "300" }, STREAM_CHAT);
      // Nothing had reached the client: it gets the gateway's answer in the provider's shape, not a dropped connection.
      expect(res.status).toBe(status);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(message);
      const rec = await recordOfReply(res);
      expect(rec).toMatchObject({
        status: "error",
        http_status: 200,
        error_type: status === 504 ? "timeout" : "upstream_stream_broken",
        cost_source: "estimated",
      });
      expect(rec!.cost_nanousd).toBeGreaterThan(0n);
    }
  });

  it("a stream cut off before its usage and end marker is recorded as broken, billed as far as it went", async () => {
    const res = await send("close-cut", {}, STREAM_CHAT);
    expect(await res.text()).toBe(`${bigEvent(0)}${bigEvent(1)}`); // relayed as it came
    expect(await recordOfReply(res)).toMatchObject({
      status: "error",
      error_type: "upstream_stream_broken",
      cost_source: "estimated",
      output_tokens: 2,
      priced: true,
    });
  });

  it("an Anthropic stream cut off before message_stop is broken too, though its usage came up front", async () => {
    const res = await fetch(`${gw.url}/v1/messages`, {
      method: "POST",
      headers: { ...ANTHROPIC_HEADERS, "x-scenario": "anthropic-close-cut" },
      body: JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 500, messages: [], stream: true }),
    });
    expect((await res.text()).split("event: content_block_delta")).toHaveLength(41);
    const rec = await recordOfReply(res);
    expect(rec).toMatchObject({
      status: "error",
      error_type: "upstream_stream_broken",
      cost_source: "estimated",
      input_uncached_tokens: 50, // as message_start said
      priced: true,
    });
    // Output as far as the events went (42 of them), not message_start's 1 token.
    expect(rec!.output_tokens).toBe(42);
  });

  it("an Anthropic stream cut off after its advisor's consultation: the cost trailer is both records' cost", async () => {
    const res = await rawRequest(`${gw.url}/v1/messages`, {
      method: "POST",
      headers: { ...ANTHROPIC_HEADERS, "x-scenario": "anthropic-advisor-close-cut" },
      body: JSON.stringify({ model: "claude-sonnet-4-6", max_tokens: 500, messages: [], stream: true }),
    });
    const records = await gatewayRecords(gw.runtime);
    const main = records.find((r) => r.event_id === res.headers["x-tollgate-event-id"])!;
    expect(main).toMatchObject({ error_type: "upstream_stream_broken", cost_source: "estimated" });
    const advisor = records.filter((r) => r.parent_event_id === main.event_id);
    expect(advisor).toMatchObject([
      { model: "claude-opus-4-6", input_uncached_tokens: 1000, output_tokens: 200 },
    ]);
    // What the reply says it cost is what was recorded for it: the executor's and its advisor's.
    expect(res.trailers["x-tollgate-cost-usd"]).toBe(formatUsd(main.cost_nanousd + advisor[0]!.cost_nanousd));
  });

  it("a reply too big to hold whole is cut off: 502, recorded as reply_too_large", async () => {
    const res = await send("huge");
    expect(res.status).toBe(502);
    const { error } = (await res.json()) as { error: { type: string; message: string } };
    expect(error.type).toBe("api_error");
    expect(error.message).toMatch(/reply exceeds 268435456 bytes/);
    expect(await attemptsOf(res)).toEqual([[1, 200, "reply_too_large"]]);
  });

  it("pipelined streams: when the client's connection closes, the one still queued behind is let go too", async () => {
    const port = Number(new URL(gw.url).port);
    const sock = connect(port, "127.0.0.1");
    sock.on("error", () => {});
    const call = `POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\nauthorization: Bearer sk-test\r\nx-scenario: big-stream\r\nx-tollgate-meta-case: pipelined\r\ncontent-length: ${Buffer.byteLength(STREAM_CHAT)}\r\n\r\n${STREAM_CHAT}`;
    const before = bigStreams.length;
    sock.write(call + call); // the second waits for the first's reply to end before its own can start
    let got = "";
    sock.on("data", (d) => (got += d));
    while (bigStreams.length < before + 2 || !got.includes("HTTP/1.1 200")) await sleep(10);
    sock.destroy();
    await Promise.all(bigStreams.slice(before).map((b) => b.closed)); // both upstream requests cancelled
    let recs: Awaited<ReturnType<typeof gatewayRecords>> = [];
    for (let i = 0; i < 50 && recs.length < 2; i++, await sleep(20))
      recs = (await gatewayRecords(gw.runtime)).filter((r) => r.metadata.case === "pipelined");
    expect(recs.map((r) => r.error_type)).toEqual(["client_disconnected", "client_disconnected"]);
  });

  it("a client that leaves while sending its request counts as 499 in /metrics, not as a gateway 502", async () => {
    const count = async (status: string) => {
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      const line = text
        .split("\n")
        .find(
          (l) =>
            l.startsWith("tollgate_gateway_requests_total{") &&
            l.includes('api="openai.chat"') &&
            l.includes(`status="${status}"`),
        );
      return line ? Number(line.split(" ").at(-1)) : 0;
    };
    const [left, failed] = [await count("499"), await count("502")];
    const sock = connect(Number(new URL(gw.url).port), "127.0.0.1");
    sock.on("error", () => {});
    sock.write(
      'POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"model":',
    );
    await sleep(50);
    sock.destroy();
    let now = left;
    for (let i = 0; i < 50 && now === left; i++, await sleep(20)) now = await count("499");
    expect(now).toBe(left + 1);
    expect(await count("502")).toBe(failed);
  });

  it("a client's Expect: 100-continue is answered by the gateway and not sent upstream", async () => {
    const body = Buffer.from(chat);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-length": body.length,
          authorization: "Bearer sk-test",
          "x-scenario": "ok",
          expect: "100-continue",
        },
      });
      req.on("continue", () => req.end(body)); // as curl does past 1 KB: the body waits for the 100
      req.on("response", (res) => {
        let t = "";
        res.on("data", (d) => (t += d));
        res.on("end", () => resolve({ status: res.statusCode!, text: t }));
      });
      req.on("error", reject);
    });
    expect(status, text).toBe(200);
    expect(text).toBe(OK_BODY);
    expect(seen.at(-1)!.head).not.toMatch(/^expect:/im);
  });

  it("a gzipped answer reaches the client with its content-encoding, and its usage is read all the same", async () => {
    const res = await send("gzip");
    expect(res.headers.get("content-encoding")).toBe("gzip");
    expect(await res.text()).toBe(OK_BODY); // fetch decodes it, as it could only with the header
    const rec = await recordOfReply(res);
    expect(rec).toMatchObject({ status: "ok", error_type: null, priced: true });
    expect(rec!.output_tokens).toBeGreaterThan(0);
  });

  it("HEAD keeps the upstream's content-length; a 204 gets none", async () => {
    const head = await fetch(`${gw.url}/v1/models/gpt-4.1-nano`, {
      method: "HEAD",
      headers: { authorization: "Bearer sk-test", "x-scenario": "head" },
    });
    expect(head.headers.get("content-length")).toBe("1234");
    const none = await fetch(`${gw.url}/v1/files/f-1`, {
      method: "DELETE",
      headers: { authorization: "Bearer sk-test", "x-scenario": "no-content" },
    });
    expect(none.status).toBe(204);
    expect(none.headers.get("content-length")).toBeNull();
  });

  it("a 304 or a redirect is relayed as the answer it is: recorded ok, no upstream error", async () => {
    const upstreamErrors = async () =>
      [
        ...(await (await fetch(`${gw.url}/metrics`)).text()).matchAll(
          /^tollgate_gateway_upstream_errors_total\{[^}]*kind="3\d\d"[^}]*\} (\d+)$/gm,
        ),
      ].reduce((n, m) => n + Number(m[1]), 0);
    const before = await upstreamErrors();
    for (const [path, scenario, status] of [
      ["/v1/files/f-1/content", "not-modified", 304],
      ["/v1/files/f-1", "not-modified", 304],
      ["/v1/files/f-1/content", "moved", 307],
    ] as const) {
      const res = await fetch(`${gw.url}${path}`, {
        headers: { authorization: "Bearer sk-test", "x-scenario": scenario, "if-none-match": '"f-1"' },
        redirect: "manual",
      });
      expect(res.status, path).toBe(status);
      await res.arrayBuffer();
      await expect
        .poll(() => recordOfReply(res))
        .toMatchObject({ kind: "other", status: "ok", http_status: status, error_type: null });
    }
    expect(await upstreamErrors()).toBe(before);
  });

  it("an answer with a status outside HTTP's range is relayed and recorded (without the status)", async () => {
    const res = await send("status-600");
    expect(res.status).toBe(600);
    expect(await recordOfReply(res)).toMatchObject({ status: "error", http_status: null });
  });

  it("streams to an HTTP/1.0 client (no chunked framing, so no cost trailer) and records the call", async () => {
    const body = JSON.stringify({
      model: "gpt-4.1-nano",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    const { port } = new URL(gw.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(port), "127.0.0.1", () =>
        sock.write(
          `POST /v1/chat/completions HTTP/1.0\r\ncontent-type: application/json\r\nauthorization: Bearer sk-test\r\nx-scenario: small-stream\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        ),
      );
      let text = "";
      sock.on("data", (d) => (text += d));
      sock.on("end", () => resolve(text));
      sock.on("error", reject);
    });
    const [head, content] = raw.split("\r\n\r\n", 2) as [string, string];
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    expect(head).not.toMatch(/^trailer:/im);
    expect(content).toBe(`${bigEvent(0)}data: [DONE]\n\n`); // the usage chunk the gateway asked for, stripped
    const eventId = /^x-tollgate-event-id: *(\S+)/im.exec(head)![1];
    const rec = (await gatewayRecords(gw.runtime)).find((r) => r.event_id === eventId);
    expect(rec).toMatchObject({ status: "ok", output_tokens: 2, stream: true });
  });

  it("a stream the upstream gzipped anyway reaches the client decoded, usage read (and stripped if added)", async () => {
    for (const includeUsage of [true, false]) {
      const res = await send(
        "gzip-stream",
        { "accept-encoding": "identity" }, // fetch would decode gzip itself: this client reads plain bytes only
        JSON.stringify({
          model: "gpt-4.1-nano",
          messages: [{ role: "user", content: "hi" }],
          stream: true,
          ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
        }),
      );
      expect(res.headers.get("content-encoding")).toBeNull();
      expect(await res.text()).toBe(`${bigEvent(0)}${includeUsage ? SMALL_USAGE : ""}data: [DONE]\n\n`);
      expect(await recordOfReply(res), `include_usage=${includeUsage}`).toMatchObject({
        status: "ok",
        error_type: null,
        input_uncached_tokens: 9,
        output_tokens: 2,
        priced: true,
      });
    }
  });

  it("a stream with bytes that are not UTF-8 reaches the client byte for byte, with the added usage stripped", async () => {
    for (const includeUsage of [false, true]) {
      const res = await send(
        "stray-bytes-stream",
        {},
        JSON.stringify({
          model: "gpt-4.1-nano",
          messages: [{ role: "user", content: "hi" }],
          stream: true,
          ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
        }),
      );
      const expected = includeUsage
        ? Buffer.concat([STRAY_EVENT, Buffer.from(`${SMALL_USAGE}data: [DONE]\n\n`)])
        : Buffer.concat([
            Buffer.from(STRAY_EVENT.toString("latin1").replace(',"usage":null', ""), "latin1"),
            Buffer.from("data: [DONE]\n\n"),
          ]);
      const got = Buffer.from(await res.arrayBuffer());
      expect(got.toString("hex"), `include_usage=${includeUsage}`).toBe(expected.toString("hex"));
      expect(await recordOfReply(res)).toMatchObject({
        status: "ok",
        input_uncached_tokens: 9,
        output_tokens: 2,
      });
    }
  });

  it("a reply that names no service tier: the one asked for is recorded, cut to the record's limit", async () => {
    const res = await send(
      "small-stream",
      {},
      JSON.stringify({
        model: "gpt-4.1-nano",
        service_tier: "t".repeat(80),
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      }),
    );
    await res.text();
    expect(await recordOfReply(res)).toMatchObject({
      status: "ok",
      service_tier: "t".repeat(64),
      priced: true,
    });
  });

  it("a request body with a byte-order mark is still read: streamed, and recorded with its model", async () => {
    const body = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from(
        JSON.stringify({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }], stream: true }),
      ),
    ]);
    const res = await send("small-stream", {}, body);
    expect(await res.text()).toBe(`${bigEvent(0)}data: [DONE]\n\n`);
    expect(await recordOfReply(res)).toMatchObject({
      status: "ok",
      model_requested: "gpt-4.1-nano",
      stream: true,
      output_tokens: 2,
    });
  });

  it("does not forward the headers a client's Connection header names", async () => {
    await new Promise<void>((resolve, reject) => {
      const req = request(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer sk-test",
          "x-scenario": "ok",
          connection: "keep-alive, x-hop-secret",
          "x-hop-secret": "for the next hop only",
        },
      });
      req.on("response", (res) => {
        res.resume();
        res.on("end", resolve);
      });
      req.on("error", reject);
      req.end(chat);
    });
    expect(seen.at(-1)!.head).not.toMatch(/^x-hop-secret:/im);
  });

  it("a client's Proxy-Authorization and an upstream's Proxy-Authenticate stay on their own hop", async () => {
    // A credential for a proxy in front of the gateway: the provider is never told it.
    // (node:http: fetch fails on any 407.)
    const res = await rawRequest(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: "Bearer sk-test",
        "proxy-authorization": "Basic Y2xpZW50OnByb3h5LXB3",
        "x-scenario": "proxy-407",
      },
      body: chat,
    });
    const head = seen.at(-1)!.head;
    expect(head).toMatch(/^authorization: Bearer sk-test$/im);
    expect(head).not.toMatch(/^proxy-authorization:/im);
    expect(head).not.toContain("Y2xpZW50OnByb3h5LXB3");
    // A challenge from a proxy behind the gateway is not the client's to answer; the answer is relayed.
    expect(res.status).toBe(407);
    expect(res.headers["proxy-authenticate"]).toBeUndefined();
    expect(res.body).toBe(PROXY_407_BODY);
    expect(res.headers["x-tollgate-event-id"]).toBeTruthy();
  });

  it("an upstream's Alt-Svc is not relayed: it names the provider's alternative services, not the gateway's", async () => {
    const res = await send("alt-svc");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(JSON.parse(OK_BODY));
    expect(res.headers.get("alt-svc")).toBeNull();
    expect(res.headers.get("content-type")).toBe("application/json");
  });

  it("a stream that carries an error event is recorded as that error, with the usage it reported", async () => {
    const streamErrors = async () =>
      Number(
        /^tollgate_gateway_upstream_errors_total\{family="anthropic",kind="stream_error"\} (\d+)$/m.exec(
          await (await fetch(`${gw.url}/metrics`)).text(),
        )?.[1] ?? 0,
      );
    const before = await streamErrors();
    const res = await fetch(`${gw.url}/v1/messages`, {
      method: "POST",
      headers: { ...ANTHROPIC_HEADERS, "x-scenario": "anthropic-error-stream" },
      body: JSON.stringify({
        model: "claude-sonnet-4-5",
        max_tokens: 10,
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      }),
    });
    expect(await res.text()).toMatch(/overloaded_error/); // relayed as sent: the client's SDK raises on it
    expect(await recordOfReply(res)).toMatchObject({
      status: "error",
      error_type: "overloaded_error",
      input_uncached_tokens: 9,
    });
    // The provider failed the call in its stream (its 529, sent after a 200): an upstream error all the same.
    expect(await streamErrors()).toBe(before + 1);
  });
});
