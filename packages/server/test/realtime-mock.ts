// A mock OpenAI Realtime upstream (WebSocket) that answers with real captured server events
// (packages/core/test/fixtures/openai-realtime), for the gateway's and the SDK's tests.
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";

export const fixtureText = (name: string) =>
  readFileSync(new URL(`../../core/test/fixtures/openai-realtime/${name}`, import.meta.url), "utf8").trim();
export const SESSION_CREATED = fixtureText("session-created.gpt-realtime.json");
export const RESPONSE_DONE = fixtureText("response-done.gpt-realtime.cached-audio.json");
const DONE = JSON.parse(RESPONSE_DONE) as { response: Record<string, unknown> };
export const RESPONSE_ID = DONE.response.id as string;
export const TRANSCRIPTION_SESSION = fixtureText("session-created.transcription-session.json");
export const TRANSCRIBE_UPDATE = fixtureText("client-session-update.gpt-4o-mini-transcribe.json");
export const TRANSCRIPTION_DELTA = fixtureText("transcription-delta.gpt-4o-mini-transcribe.json");
export const TRANSCRIBED = fixtureText("transcription-completed.gpt-4o-mini-transcribe.json");
export const TRANSCRIBED_WHISPER = fixtureText("transcription-completed.whisper-1.duration.json");
/** The captured response's cost on gpt-realtime (hand-computed in the core's openai-realtime test). */
export const COST = 10_613_600n;
/** How long the mock takes to answer a `?model=slow` handshake. */
export const SLOW_MS = 300;

/** The `response.created` the server sends first: the captured response, in progress, no usage yet. */
const responseCreated = (id: string) =>
  JSON.stringify({
    type: "response.created",
    event_id: `event_created_${id}`,
    response: { ...DONE.response, id, status: "in_progress", output: [], usage: null },
  });
/** The captured `response.done` under another response id, with another status where one is given. */
const responseDone = (id: string, status?: { status: string; status_details: unknown }) =>
  id === RESPONSE_ID && !status
    ? RESPONSE_DONE
    : JSON.stringify({ ...JSON.parse(RESPONSE_DONE), response: { ...DONE.response, id, ...status } });

/** What the mock saw of each session: its handshake headers and the client's messages. */
export interface Seen {
  headers: IncomingMessage["headers"];
  url: string;
  messages: string[];
  binary: Buffer[];
  closed: Promise<{ code: number; reason: string }>;
}

/**
 * The mock. `response.create` → response.created, an audio delta, then response.done (the captured one
 * for the first response of the first session; metadata.hold: no response.done until `response.cancel`,
 * then a cancelled one); `tollgate.test.close` closes the session with the code and reason it names;
 * binary messages come back. `?intent=transcription`: a transcription session; a `session.update` is
 * answered with a transcription (whisper-1's when the update names it, else the captured
 * gpt-4o-mini-transcribe one). `?model=refuse` is refused at the handshake as OpenAI refuses a bad key
 * (401, its JSON body); `?model=slow` is answered after SLOW_MS.
 */
export async function startRealtimeMock() {
  const sessions: Seen[] = [];
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => [...p][0] ?? false });
  wss.on("connection", (ws, req) => {
    const seen: Seen = {
      headers: req.headers,
      url: req.url ?? "",
      messages: [],
      binary: [],
      closed: new Promise((r) => ws.once("close", (code, reason) => r({ code, reason: reason.toString() }))),
    };
    sessions.push(seen);
    ws.send(req.url?.includes("intent=transcription") ? TRANSCRIPTION_SESSION : SESSION_CREATED);
    let n = 0;
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        seen.binary.push(data as Buffer);
        return ws.send(data as Buffer, { binary: true });
      }
      const text = data.toString();
      seen.messages.push(text);
      const ev = JSON.parse(text) as { type: string; code?: number; reason?: string; response?: unknown };
      if (ev.type === "tollgate.test.close") return ws.close(ev.code, ev.reason);
      if (ev.type === "session.update") {
        if (text.includes("whisper-1")) return ws.send(TRANSCRIBED_WHISPER);
        ws.send(TRANSCRIPTION_DELTA);
        return ws.send(TRANSCRIBED);
      }
      if (ev.type === "response.cancel") {
        const id = (ev as { response_id?: string }).response_id!;
        return ws.send(
          responseDone(id, {
            status: "cancelled",
            status_details: { type: "cancelled", reason: "client_cancelled" },
          }),
        );
      }
      if (ev.type !== "response.create") return;
      const id = n++ === 0 && sessions.length === 1 ? RESPONSE_ID : `resp_mock_${sessions.length}_${n}`;
      ws.send(responseCreated(id));
      ws.send(
        JSON.stringify({ type: "response.output_audio.delta", response_id: id, delta: "AAAA".repeat(1000) }),
      );
      const hold = (ev.response as { metadata?: { hold?: string } } | undefined)?.metadata?.hold;
      if (!hold) ws.send(responseDone(id));
    });
  });
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (req.url?.includes("model=refuse")) {
      const body = JSON.stringify({
        error: {
          type: "invalid_request_error",
          code: "invalid_api_key",
          message: "Incorrect API key provided",
        },
      });
      return socket.end(
        `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nx-request-id: req_mock\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    }
    const accept = () => wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
    if (req.url?.includes("model=slow")) setTimeout(accept, SLOW_MS);
    else accept();
  });
  server.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  return {
    server,
    sessions,
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
