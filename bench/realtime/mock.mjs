#!/usr/bin/env node
// A mock OpenAI Realtime upstream for bench:realtime (a child process of its own): it sends the captured
// session.created on connect, echoes every other message as it came (a stand-in for the server's events
// at the pace of the client's audio), and answers `response.create` with the captured response.done.
// Prints {"port": N} once listening.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { WebSocketServer } from "ws";

const fixture = (name) =>
  readFileSync(
    new URL(`../../packages/core/test/fixtures/openai-realtime/${name}`, import.meta.url),
    "utf8",
  ).trim();
const SESSION_CREATED = fixture("session-created.gpt-realtime.json");
const RESPONSE_DONE = fixture("response-done.gpt-realtime.cached-audio.json");

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
wss.on("connection", (ws) => {
  ws.send(SESSION_CREATED);
  ws.on("message", (data, isBinary) => {
    if (!isBinary && data.length < 64 && String(data).includes('"response.create"'))
      return ws.send(RESPONSE_DONE);
    ws.send(data, { binary: isBinary });
  });
});
const server = createServer((_req, res) => res.writeHead(404).end());
server.on("upgrade", (req, socket, head) =>
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req)),
);
server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: server.address().port })));
