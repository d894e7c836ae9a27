#!/usr/bin/env node
// Mock OpenAI upstream for bench/gateway.mjs, run in its own process so its CPU is not charged to the
// gateway under test. POST /v1/chat/completions answers with a real recorded chat completion (with usage)
// at once; when the request body has "stream": true it replays a real SSE stream, one event every
// --gap-ms (-1: all at once). GET /v1/files/<MB>/content and POST /v1/files serve bench/files.mjs. GET
// /__stats returns the request count. Prints {"port": N} on stdout once listening.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    json: { type: "string" },
    sse: { type: "string" },
    "gap-ms": { type: "string", default: "10" },
  },
});
const body = readFileSync(values.json);
const sseEvents = readFileSync(values.sse, "utf8")
  .split(/\n\n+/)
  .filter((e) => e.trim().length > 0)
  .map((e) => Buffer.from(`${e}\n\n`));
const gapMs = Number(values["gap-ms"]);

const jsonHeaders = {
  "content-type": "application/json",
  "content-length": String(body.length),
  "x-request-id": "req_mock_0001",
  "openai-processing-ms": "0",
};
const sseHeaders = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-request-id": "req_mock_0002",
};
const STREAM_RE = /"stream"\s*:\s*true/;
let requests = 0;
let streams = 0;

function replayStream(res) {
  streams++;
  res.writeHead(200, sseHeaders);
  let i = 0;
  if (gapMs < 0) {
    res.end(Buffer.concat(sseEvents)); // --gap-ms -1: the whole stream at once (client-side CPU benchmarks)
    return;
  }
  const next = () => {
    if (res.destroyed) return;
    res.write(sseEvents[i++]);
    if (i < sseEvents.length) setTimeout(next, gapMs);
    else res.end();
  };
  next();
}

const MB = 1024 * 1024;
const FILE_CHUNK = Buffer.alloc(MB, 0x61);

/** `bytes` of a file, written as fast as the reader takes them. */
function sendFile(res, bytes) {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(bytes) });
  let left = bytes;
  const more = () => {
    while (left > 0 && !res.destroyed) {
      const n = Math.min(left, MB);
      left -= n;
      if (left === 0) return void res.end(n === MB ? FILE_CHUNK : FILE_CHUNK.subarray(0, n));
      if (!res.write(n === MB ? FILE_CHUNK : FILE_CHUNK.subarray(0, n))) return void res.once("drain", more);
    }
  };
  more();
}

const server = createServer((req, res) => {
  if (req.method === "POST" && req.url?.startsWith("/v1/chat/completions")) {
    requests++;
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const text =
        chunks.length === 1 ? chunks[0].toString("latin1") : Buffer.concat(chunks).toString("latin1");
      if (STREAM_RE.test(text)) replayStream(res);
      else {
        res.writeHead(200, jsonHeaders);
        res.end(body);
      }
    });
    return;
  }
  // Files (bench/files.mjs): GET /v1/files/<MB>/content sends that many MB; POST /v1/files takes any upload.
  const download = req.method === "GET" && /^\/v1\/files\/(\d+)\/content$/.exec(req.url ?? "");
  if (download) return sendFile(res, Number(download[1]) * MB);
  if (req.method === "POST" && req.url === "/v1/files") {
    let bytes = 0;
    req.on("data", (c) => (bytes += c.length));
    req.on("end", () => {
      const s = JSON.stringify({ id: "file-bench", object: "file", bytes });
      res.writeHead(200, { "content-type": "application/json", "content-length": String(s.length) });
      res.end(s);
    });
    return;
  }
  if (req.method === "GET" && req.url === "/__stats") {
    const s = JSON.stringify({ requests, streams });
    res.writeHead(200, { "content-type": "application/json", "content-length": String(s.length) });
    res.end(s);
    return;
  }
  req.resume();
  res.writeHead(404, { "content-type": "application/json" });
  res.end(
    JSON.stringify({ error: { message: `mock: no route ${req.method} ${req.url}`, type: "not_found" } }),
  );
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.requestTimeout = 0;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on("SIGTERM", () => process.exit(0));
