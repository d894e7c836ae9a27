#!/usr/bin/env node
// The floor for bench/gateway.mjs: the least a Node proxy can do, forwarding each request to the upstream
// with undici and relaying its answer chunk by chunk, with no parsing, recording or limits. What it adds
// over direct is what node, undici and one more process hop cost on this machine; what Tollgate adds over
// it is Tollgate's own work. Usage: floor-proxy.mjs <upstream origin>; prints {"port": N} once listening.
import { createServer } from "node:http";
import { Pool } from "undici";

const upstream = new Pool(process.argv[2], { connections: 256, pipelining: 1 });
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "host", "content-length"]);

function forwardable(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

const server = createServer(async (req, res) => {
  try {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const up = await upstream.request({
      path: req.url,
      method: req.method,
      headers: forwardable(req.headers),
      body: Buffer.concat(chunks),
    });
    res.writeHead(up.statusCode, forwardable(up.headers));
    for await (const c of up.body) res.write(c);
    res.end();
  } catch (e) {
    res.destroy(e);
  }
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () =>
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`),
);
