#!/usr/bin/env node
// Mock OpenAI and Anthropic upstream for bench/gateway-soak.mjs, in a process of its own. It replays real
// captures from ../shared/fixtures/providers: chat completions (whole, or streamed an event every --gap-ms),
// Anthropic messages (whole or streamed), embeddings, background responses (a submission answers queued under
// an id of its own; its polls answer in_progress once, then the finished response) and a model list for
// pass-through calls. `x-soak-fail` fails a request the first time its `x-soak-id` is seen: `429` (with
// retry-after-ms: 50), `500`, `reset` (the socket destroyed before any answer) or `reset-mid-stream` (half
// a stream, then the socket destroyed); the retry that follows is answered normally. Every map it keeps is
// bounded: a soak must measure the gateway's memory, not the mock's. GET /__stats returns its counts.
// Prints {"port": N} on stdout once listening.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { "gap-ms": { type: "string", default: "5" } } });
const GAP_MS = Number(values["gap-ms"]);
const providers = new URL("../../../shared/fixtures/providers/", import.meta.url);
const fixture = (rel) => readFileSync(new URL(rel, providers));
const sseEvents = (rel) =>
  fixture(rel)
    .toString("utf8")
    .split(/\n\n+/)
    .filter((e) => e.trim().length > 0)
    .map((e) => Buffer.from(`${e}\n\n`));

const CHAT = fixture("openai/chat-completion.gpt-4.1-nano.json");
const CHAT_SSE = sseEvents("openai/chat-completion.stream.gpt-4o-mini.include-usage.sse");
const MESSAGES = fixture("anthropic/messages.claude-sonnet-4-5.text.json");
const MESSAGES_SSE = sseEvents("anthropic/messages.stream.claude-sonnet-4.thinking.sse");
const EMBEDDINGS = fixture("openai/embeddings.text-embedding-3-small.vectors-truncated.json");
const RESPONSE = JSON.parse(fixture("openai/responses.gpt-4o.cached.json").toString("utf8"));
const MODELS = Buffer.from(
  JSON.stringify({ object: "list", data: [{ id: "gpt-4.1-nano", object: "model", owned_by: "openai" }] }),
);

/** Most background responses kept, and most failed-once ids remembered (the oldest go first). */
const MAX_KEPT = 20_000;
/** Background responses submitted and not found finished yet: id -> polls answered so far. */
const background = new Map();
/** `x-soak-id`s failed once: their retry is answered normally. */
const failedOnce = new Set();
let nextResponse = 0;
const stats = { requests: 0, failed: 0, submitted: 0, polled: 0 };

function keep(collection, key, value) {
  if (collection.size >= MAX_KEPT) collection.delete(collection.keys().next().value);
  if (collection instanceof Map) collection.set(key, value);
  else collection.add(key);
}

function sendJson(res, status, body, headers = {}) {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(buf.length),
    "x-request-id": `req_soak_${stats.requests}`,
    ...headers,
  });
  res.end(buf);
}

/** Replays `events` one every GAP_MS; `upTo` fewer than all: the socket is destroyed after them. */
function replay(res, events, upTo = events.length) {
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
  let i = 0;
  const next = () => {
    if (res.destroyed) return;
    if (i === upTo) return upTo === events.length ? res.end() : res.socket?.destroy();
    res.write(events[i++]);
    setTimeout(next, GAP_MS);
  };
  next();
}

/** Fails the request as `x-soak-fail` asks, the first time its id is seen; false when it is not to fail. */
function failFirst(req, res, events) {
  const how = req.headers["x-soak-fail"];
  const id = req.headers["x-soak-id"];
  if (!how || !id || failedOnce.has(id)) return false;
  keep(failedOnce, id);
  stats.failed++;
  if (how === "429")
    sendJson(
      res,
      429,
      { error: { message: "Rate limit reached (soak)", type: "requests", code: "rate_limit_exceeded" } },
      { "retry-after-ms": "50" },
    );
  else if (how === "500")
    sendJson(res, 500, { error: { message: "soak: upstream failed", type: "server_error" } });
  else if (how === "reset-mid-stream" && events) replay(res, events, events.length >> 1);
  else res.socket?.destroy();
  return true;
}

function submit(res) {
  const id = `resp_soak_${++nextResponse}`;
  keep(background, id, 0);
  stats.submitted++;
  const queued = {
    ...RESPONSE,
    id,
    background: true,
    status: "queued",
    output: [],
    usage: null,
    created_at: Math.floor(Date.now() / 1000),
  };
  sendJson(res, 200, queued);
}

function poll(res, id) {
  const polls = background.get(id);
  if (polls === undefined)
    return sendJson(res, 404, {
      error: { message: `No response with id '${id}'`, type: "invalid_request_error" },
    });
  stats.polled++;
  if (polls === 0) {
    background.set(id, 1);
    return sendJson(res, 200, {
      ...RESPONSE,
      id,
      background: true,
      status: "in_progress",
      output: [],
      usage: null,
    });
  }
  background.delete(id);
  sendJson(res, 200, { ...RESPONSE, id, background: true });
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const url = req.url ?? "/";
    if (url === "/__stats") return sendJson(res, 200, { ...stats, kept: background.size + failedOnce.size });
    stats.requests++;
    const text = Buffer.concat(chunks).toString("utf8");
    const stream = /"stream"\s*:\s*true/.test(text);
    if (req.method === "POST" && url === "/v1/chat/completions") {
      if (failFirst(req, res, stream ? CHAT_SSE : null)) return;
      return stream ? replay(res, CHAT_SSE) : sendJson(res, 200, CHAT);
    }
    if (req.method === "POST" && url === "/v1/messages") {
      if (failFirst(req, res, stream ? MESSAGES_SSE : null)) return;
      return stream ? replay(res, MESSAGES_SSE) : sendJson(res, 200, MESSAGES);
    }
    if (req.method === "POST" && url === "/v1/embeddings") return sendJson(res, 200, EMBEDDINGS);
    if (req.method === "POST" && url === "/v1/responses") return submit(res);
    const polled = req.method === "GET" && /^\/v1\/responses\/([^/?]+)$/.exec(url);
    if (polled) return poll(res, polled[1]);
    if (req.method === "GET" && url === "/v1/models") return sendJson(res, 200, MODELS);
    sendJson(res, 404, { error: { message: `soak mock: no route ${req.method} ${url}`, type: "not_found" } });
  });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.requestTimeout = 0;
server.listen(0, "127.0.0.1", () =>
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`),
);
process.on("SIGTERM", () => process.exit(0));
