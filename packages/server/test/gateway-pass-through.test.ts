// Pass-through paths carry what model calls do not: file uploads and downloads of hundreds of MB, and the
// Assistants API's streams. The gateway relays them as they come, never holding a body whole.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { CallRecord } from "@tollgate/core";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayRecords, startTestGateway } from "./helpers.js";

const MB = 1024 * 1024;
const DOWNLOAD_BYTES = 48 * MB;
/** Byte i of the download: a pattern, so a lost or reordered chunk shows. */
const downloadChunk = (offset: number, size: number) => {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (offset + i) % 251;
  return b;
};
const DOWNLOAD_SHA = (() => {
  const h = createHash("sha256");
  for (let off = 0; off < DOWNLOAD_BYTES; off += MB) h.update(downloadChunk(off, MB));
  return h.digest("hex");
})();

/** What the upstream saw of each upload, and of each download it wrote. */
const uploads: { bytes: number; chunked: boolean; attempts: number }[] = [];
let uploadSeen = 0;
const downloads: { written: number; finished: boolean; closed: Promise<void> }[] = [];
/** The Assistants-style stream waits here before its second event. */
let releaseStream: () => void = () => {};

function upload(req: IncomingMessage, res: ServerResponse) {
  const h = createHash("sha256");
  let bytes = 0;
  uploadSeen = 0;
  req.on("data", (d: Buffer) => {
    h.update(d);
    bytes += d.length;
    uploadSeen = bytes;
  });
  req.on("end", () => {
    const status = req.headers["x-fail"] ? 500 : 200;
    uploads.push({ bytes, chunked: req.headers["transfer-encoding"] === "chunked", attempts: 1 });
    res.writeHead(status, { "content-type": "application/json" });
    res.end(
      JSON.stringify(
        status === 200
          ? { id: "file-1", bytes, sha256: h.digest("hex") }
          : { error: { type: "server_error", message: "boom" } },
      ),
    );
  });
}

function download(res: ServerResponse) {
  const state = { written: 0, finished: false, closed: once(res, "close").then(() => {}) };
  downloads.push(state);
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": DOWNLOAD_BYTES });
  const more = () => {
    while (state.written < DOWNLOAD_BYTES && !res.destroyed) {
      const ok = res.write(downloadChunk(state.written, MB));
      state.written += MB;
      if (!ok) return void res.once("drain", more);
    }
    if (!res.destroyed) {
      state.finished = true;
      res.end();
    }
  };
  more();
}

let upstream: Server;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    if (req.method === "POST" && req.url === "/v1/files") return upload(req, res);
    if (req.url === "/v1/files?purpose=too-big") {
      // Refused at the headers, the body left unread (not drained), as a provider refuses an oversized
      // upload; the connection is dropped a little later.
      req.on("data", () => {}).pause();
      res.writeHead(413, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { type: "invalid_request_error", message: "too big" } }));
      return void setTimeout(() => req.socket.destroy(), 100);
    }
    if (req.url === "/v1/files/big/content") return download(res);
    if (req.url === "/v1/threads/runs") {
      req.resume();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('event: thread.run.created\ndata: {"id":"run_1","object":"thread.run"}\n\n');
      return new Promise<void>((r) => (releaseStream = r)).then(() =>
        res.end('event: thread.run.completed\ndata: {"id":"run_1"}\n\nevent: done\ndata: [DONE]\n\n'),
      );
    }
    if (req.url === "/v1/batches/bad") {
      res.writeHead(400, { "content-type": "application/json" });
      return res.end(JSON.stringify({ error: { type: "invalid_request_error", message: "no such batch" } }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  gw = await startTestGateway(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
});
afterAll(async () => {
  await gw?.stop();
  upstream?.close();
});

/** The record a reply's x-tollgate-event-id names, once written (a relayed reply's comes after its end). */
async function recordOf(eventId: string | string[] | null | undefined): Promise<CallRecord> {
  for (let i = 0; i < 100; i++) {
    const rec = (await gatewayRecords(gw.runtime)).find((r) => r.event_id === eventId);
    if (rec) return rec;
    await sleep(50);
  }
  throw new Error(`no record of ${eventId}`);
}

/** A GET whose reply is taken at its headers and paused: the test decides when (if ever) to read. */
function get(path: string): Promise<{ req: ReturnType<typeof request>; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = request(`${gw.url}${path}`, { headers: { authorization: "Bearer sk-test" } });
    req.on("response", (res) => {
      res.pause();
      resolve({ req, res });
    });
    req.on("error", reject);
    req.end();
  });
}

/** Sends `total` bytes to POST /v1/files in 1 MB pieces; `between` runs after the first `firstMb` of them. */
function postUpload(
  total: number,
  opts: {
    chunked?: boolean;
    headers?: Record<string, string>;
    firstMb?: number;
    between?: () => Promise<void>;
    /** A pause before each 1 MB piece after the first: a client on a slow link. */
    pieceGapMs?: number;
  } = {},
): Promise<{ status: number; headers: IncomingMessage["headers"]; body: string; sha256: string }> {
  const h = createHash("sha256");
  uploadSeen = 0;
  return new Promise((resolve, reject) => {
    const req = request(`${gw.url}/v1/files`, {
      method: "POST",
      headers: {
        authorization: "Bearer sk-test",
        "content-type": "application/octet-stream",
        ...(opts.chunked ? {} : { "content-length": String(total) }),
        ...opts.headers,
      },
    });
    req.on("response", async (res) => {
      let body = "";
      for await (const d of res) body += d;
      resolve({ status: res.statusCode!, headers: res.headers, body, sha256: h.digest("hex") });
    });
    req.on("error", reject);
    void (async () => {
      for (let off = 0, n = 0; off < total; off += MB, n++) {
        if (n === opts.firstMb) await opts.between?.();
        if (n > 0 && opts.pieceGapMs) await sleep(opts.pieceGapMs);
        const piece = downloadChunk(off, Math.min(MB, total - off));
        h.update(piece);
        if (!req.write(piece)) await once(req, "drain");
      }
      req.end();
    })().catch(reject);
  });
}

describe("gateway pass-through: bodies relayed as they come", () => {
  it("a 40 MB upload (past the 32 MB a model call may send) reaches the upstream whole, sent as it comes", async () => {
    const res = await postUpload(40 * MB, {
      firstMb: 4,
      // The upstream has bytes while the client still holds the rest: the gateway did not wait for the end.
      between: async () => {
        while (uploadSeen < 2 * MB) await sleep(5);
      },
    });
    expect(res.status, res.body).toBe(200);
    const answer = JSON.parse(res.body);
    expect(answer).toMatchObject({ bytes: 40 * MB, sha256: res.sha256 });
    expect(uploads.at(-1)).toMatchObject({ bytes: 40 * MB, chunked: false });
    const rec = await recordOf(res.headers["x-tollgate-event-id"]);
    expect(rec).toMatchObject({ kind: "other", status: "ok", http_status: 200, priced: false });
    expect(res.headers["x-tollgate-cost-usd"]).toBe("0.00");
  });

  it("an upload that takes longer than the upstream timeout, going out all along, is not cut off", async () => {
    // 6 pieces 120 ms apart against a 300 ms timeout: the wait for the answer starts once the body is sent.
    const res = await postUpload(6 * MB, { pieceGapMs: 120, headers: { "x-tollgate-timeout-ms": "300" } });
    expect(res.status, res.body).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ bytes: 6 * MB, sha256: res.sha256 });
  });

  it("an upload of unknown length goes up chunked, whole", async () => {
    const res = await postUpload(3 * MB + 17, { chunked: true });
    expect(res.status, res.body).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ bytes: 3 * MB + 17, sha256: res.sha256 });
    expect(uploads.at(-1)).toMatchObject({ chunked: true });
  });

  it("a big upload can be sent once only: asked-for retries are not made, the 500 reaches the client", async () => {
    const before = uploads.length;
    const res = await postUpload(2 * MB, { headers: { "x-tollgate-retries": "2", "x-fail": "1" } });
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body)).toMatchObject({ error: { type: "server_error" } });
    expect(uploads.length - before).toBe(1);
    const rec = await recordOf(res.headers["x-tollgate-event-id"]);
    const attempts = (await gatewayRecords(gw.runtime)).filter((r) => r.request_id === rec.request_id);
    expect(attempts.map((r) => [r.attempt, r.http_status, r.error_type])).toEqual([[1, 500, "server_error"]]);
  });

  it("an upload the upstream refuses early: the client gets the refusal, then its connection is closed", async () => {
    // A raw client that sends its whole body before reading, as python-requests does: the gateway can no
    // longer read the rest, so it must not leave the client writing into a connection nobody reads.
    const sock = connect(Number(new URL(gw.url).port), "127.0.0.1");
    let reply = "";
    sock.on("data", (d) => (reply += d));
    sock.on("error", () => {}); // EPIPE / ECONNRESET: the gateway closed while the client still sent
    const closed = new Promise((r) => sock.once("close", r));
    sock.write(
      `POST /v1/files?purpose=too-big HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-test\r\ncontent-length: ${64 * MB}\r\n\r\n`,
    );
    let open = true;
    void closed.then(() => (open = false));
    for (let off = 0; off < 64 * MB && open; off += MB)
      if (!sock.write(downloadChunk(off, MB)))
        await new Promise((r) => sock.once("drain", r).once("close", r));
    await closed;
    expect(reply).toMatch(/^HTTP\/1\.1 413 /);
    expect(reply).toMatch(/\r\nconnection: close\r\n/i);
    expect(reply).toContain('"too big"');
    const rec = await recordOf(/x-tollgate-event-id: (\S+)/i.exec(reply)?.[1]);
    expect(rec).toMatchObject({
      kind: "other",
      status: "error",
      http_status: 413,
      error_type: "invalid_request_error",
    });
  });

  it("a client that leaves mid-upload: the upstream request is cancelled, the call recorded as gone", async () => {
    const before = uploads.length;
    const eventIdsBefore = new Set((await gatewayRecords(gw.runtime)).map((r) => r.event_id));
    uploadSeen = 0;
    const req = request(`${gw.url}/v1/files`, {
      method: "POST",
      headers: { authorization: "Bearer sk-test", "content-length": String(8 * MB) },
    });
    req.on("error", () => {});
    req.write(downloadChunk(0, 2 * MB));
    while (uploadSeen < MB) await sleep(5);
    req.destroy();
    let rec: CallRecord | undefined;
    for (let i = 0; i < 100 && !rec; i++, await sleep(50))
      rec = (await gatewayRecords(gw.runtime)).find((r) => !eventIdsBefore.has(r.event_id));
    expect(rec).toMatchObject({ kind: "other", status: "error", error_type: "client_disconnected" });
    expect(uploads.length).toBe(before); // the upstream never saw the upload end
    const after = await postUpload(2 * MB);
    expect(after.status).toBe(200);
  });

  it("a 48 MB download goes at the client's pace: the upstream waits while the client reads nothing", async () => {
    const { res } = await get("/v1/files/big/content");
    expect(res.headers["content-length"]).toBe(String(DOWNLOAD_BYTES));
    const upstreamSide = downloads.at(-1)!;
    await sleep(400);
    // Held whole, the upstream would have written all 48 MB into the gateway by now.
    expect(upstreamSide.finished).toBe(false);
    expect(upstreamSide.written).toBeLessThan(DOWNLOAD_BYTES / 2);
    const h = createHash("sha256");
    let bytes = 0;
    res.on("data", (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    res.resume();
    await once(res, "end");
    expect(bytes).toBe(DOWNLOAD_BYTES);
    expect(h.digest("hex")).toBe(DOWNLOAD_SHA);
    const rec = await recordOf(res.headers["x-tollgate-event-id"]);
    expect(rec).toMatchObject({ kind: "other", status: "ok", http_status: 200, error_type: null });
  });

  it("a client that leaves mid-download: the upstream request is cancelled and the call recorded as such", async () => {
    const { req, res } = await get("/v1/files/big/content");
    const upstreamSide = downloads.at(-1)!;
    res.once("data", () => req.destroy());
    res.resume();
    await upstreamSide.closed;
    expect(upstreamSide.finished).toBe(false);
    const rec = await recordOf(res.headers["x-tollgate-event-id"]);
    expect(rec).toMatchObject({
      kind: "other",
      status: "error",
      error_type: "client_disconnected",
      priced: false,
      input_uncached_tokens: 0,
    });
  });

  it("the openai SDK: files.create uploads through the gateway, files.content downloads whole", async () => {
    const openai = new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const data = downloadChunk(7, 3 * MB);
    const created = (await openai.files.create({
      file: await toFile(data, "batch.jsonl"),
      purpose: "batch",
    })) as unknown as { bytes: number };
    // The multipart body the SDK built arrived whole: the file plus its part headers.
    expect(created.bytes).toBeGreaterThan(data.length);
    expect(uploads.at(-1)!.bytes).toBe(created.bytes);
    const content = await openai.files.content("big");
    const body = Buffer.from(await content.arrayBuffer());
    expect(body.length).toBe(DOWNLOAD_BYTES);
    expect(createHash("sha256").update(body).digest("hex")).toBe(DOWNLOAD_SHA);
  });

  it("an Assistants stream on a pass-through path reaches the client event by event", async () => {
    const { res } = await get("/v1/threads/runs");
    res.resume();
    let text = "";
    res.on("data", (d) => (text += d));
    // The first event arrives while the upstream still holds the rest back.
    while (!text.includes("thread.run.created")) await sleep(5);
    releaseStream();
    await once(res, "end");
    expect(text).toBe(
      'event: thread.run.created\ndata: {"id":"run_1","object":"thread.run"}\n\n' +
        'event: thread.run.completed\ndata: {"id":"run_1"}\n\nevent: done\ndata: [DONE]\n\n',
    );
    const rec = await recordOf(res.headers["x-tollgate-event-id"]);
    expect(rec).toMatchObject({ kind: "other", status: "ok", http_status: 200 });
    expect(rec.ttft_ms).not.toBeNull();
  });

  it("a pass-through error answer reaches the client as sent, and is recorded with its error type", async () => {
    const res = await fetch(`${gw.url}/v1/batches/bad`, { headers: { authorization: "Bearer sk-test" } });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { type: "invalid_request_error", message: "no such batch" } });
    const rec = await recordOf(res.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({
      kind: "other",
      status: "error",
      http_status: 400,
      error_type: "invalid_request_error",
    });
  });
});
