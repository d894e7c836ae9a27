import { type IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { uuidv7 } from "@tollgate/core";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import { costUsd } from "../cost-usd.js";
import type { GatewayConfig } from "./config.js";
import { errorTypeOf, GatewayError } from "./gateway-error.js";
import { replyHeaders } from "./headers.js";
import { type MeterDeps, type RealtimeCaller, RealtimeMeter } from "./realtime-meter.js";
import { canonicalPath, type GatewayRoute } from "./routes.js";
import { SocketEgress } from "./socket-egress.js";

/** A WebSocket client the gateway has authenticated and attributed, and where its session goes. */
export interface SocketClient extends RealtimeCaller {
  route: GatewayRoute;
  /** The upstream base URL (http or https, its /v1 included). */
  base: string;
  extraHeaders: Record<string, string>;
  /** The client's headers to pass on (x-tollgate-* and hop-by-hop taken out). */
  forward: Record<string, string>;
  /** Bound on the upstream's opening handshake (x-tollgate-timeout-ms, else the config's). */
  timeoutMs: number;
}

/** A message larger than this closes its session (1009): OpenAI's own events stay far below it. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Messages queued to a side that does not read: past HIGH the other side is paused, under LOW resumed. */
const HIGH_BYTES = 4 * 1024 * 1024;
const LOW_BYTES = 1024 * 1024;
/** How much of an upstream's refusal is relayed (its error body). */
const MAX_REFUSAL_BYTES = 64 * 1024;
/** The handshake's own headers: the upstream connection makes its own. */
const HANDSHAKE = /^sec-websocket-(key|version|extensions|protocol)$/;
const KEY = /^[+/0-9A-Za-z]{22}==$/;
/** How long a client's leaving waits for the responses it cut short to say what they cost. */
const CANCEL_WAIT_MS = 5_000;
/** How long a client has to answer a shutdown's close before its connection is dropped. */
const SHUTDOWN_CLOSE_WAIT_MS = 5_000;

/** An OpenAI Realtime connection: metered, each of its responses a recorded call. */
export function isRealtime(route: GatewayRoute): boolean {
  // However the client spelt it (`/realtime/`, `//realtime`, `/%72ealtime`): an upstream that tidies
  // paths would otherwise serve an unmetered session.
  return route.family === "openai" && canonicalPath(route.upstreamPath.split("?", 1)[0]!) === "/realtime";
}

/**
 * WebSocket sessions through the gateway (`GET /v1/...` with `Upgrade: websocket`): the upstream's
 * handshake is made first, with the client's headers and subprotocols (its provider key among them),
 * and only then the client's, so an upstream that refuses (401, 429, a bad model) answers the client
 * itself, status, headers and body. Then every message goes on as it came, text or binary, each way,
 * and a close carries its code and reason across. OpenAI Realtime sessions are metered (RealtimeMeter).
 */
export class SocketRelay {
  readonly #server: WebSocketServer;
  /** The subprotocol the upstream chose, for the client's handshake to answer with. */
  readonly #chosen = new WeakMap<IncomingMessage, string>();
  readonly #sessions = new Set<Session>();
  /** Upstream handshakes under way: a shutdown drops them (they may take the whole upstream timeout). */
  readonly #opening = new Set<WebSocket>();
  #closing = false;
  readonly #egress: SocketEgress;

  readonly #heartbeatMs: number;
  #heartbeat: NodeJS.Timeout | null = null;

  constructor(
    private readonly deps: MeterDeps,
    config: Pick<GatewayConfig, "egressProxy" | "wsHeartbeatMs">,
  ) {
    this.#egress = new SocketEgress(config.egressProxy);
    this.#heartbeatMs = config.wsHeartbeatMs;
    this.#server = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE_BYTES,
      handleProtocols: (_offered, req) => this.#chosen.get(req) ?? false,
    });
  }

  /**
   * Relays one upgrade request; resolves with the status its handshake was answered with (101 when the
   * session opened). A GatewayError thrown is the gateway's own answer, still to be written.
   */
  async relay(req: IncomingMessage, socket: Duplex, head: Buffer, client: SocketClient): Promise<number> {
    const key = req.headers["sec-websocket-key"];
    const version = req.headers["sec-websocket-version"];
    if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket" || !key || !KEY.test(key))
      throw new GatewayError(
        400,
        "invalid_request_error",
        "not a WebSocket handshake (Upgrade, Sec-WebSocket-Key)",
      );
    if (version !== "13" && version !== "8")
      throw new GatewayError(400, "invalid_request_error", "Sec-WebSocket-Version must be 13");
    if (req.method !== "GET")
      throw new GatewayError(405, "invalid_request_error", "a WebSocket handshake is a GET request");
    this.#refuseWhenClosing();
    let meter: RealtimeMeter | null = null;
    let session: Session | null = null;
    const sides = {
      toUpstream: (e: Record<string, unknown>) => session?.send("upstream", e),
      toClient: (e: Record<string, unknown>) => session?.send("client", e),
    };
    if (isRealtime(client.route)) {
      meter = new RealtimeMeter(this.deps, client, sides);
      await meter.admitSession();
      this.#refuseWhenClosing();
    }
    const url = upstreamUrl(client);
    const upstream = new WebSocket(url, offeredProtocols(req), {
      agent: this.#egress.agentFor(url),
      headers: upstreamHeaders(client),
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE_BYTES,
      handshakeTimeout: client.timeoutMs,
    });
    // The upstream may speak first (session.created), even in the packet that opens it, before the
    // client's handshake is done: kept till then.
    const early: Early = { messages: [], close: null };
    const keep = (data: RawData, isBinary: boolean) => early.messages.push([data as Buffer, isBinary]);
    const keepClose = (code: number, reason: Buffer) => {
      early.close = { code, reason };
    };
    this.#opening.add(upstream);
    upstream.on("message", keep);
    upstream.once("close", keepClose);
    const gone = () => upstream.terminate();
    socket.once("close", gone);
    const opened = await new Promise<"open" | IncomingMessage | Error>((resolve) => {
      upstream.once("open", () => resolve("open"));
      upstream.once("unexpected-response", (_req, res) => resolve(res));
      upstream.once("error", resolve);
    });
    socket.off("close", gone);
    this.#opening.delete(upstream);
    if (this.#closing) upstream.terminate();
    this.#refuseWhenClosing();
    if (opened instanceof Error) {
      if (socket.destroyed) return 499;
      const timeout = /handshake has timed out/i.test(opened.message);
      const err = timeout
        ? new GatewayError(
            504,
            "timeout_error",
            `upstream did not answer the WebSocket handshake within ${client.timeoutMs} ms`,
          )
        : new GatewayError(502, "api_error", `upstream connection failed: ${opened.message}`);
      // A metered session's failure is a recorded call: the answer names it, as an HTTP call's does.
      throw err.withRecord(meter?.refused(null, timeout ? "timeout" : "connection_error") ?? null);
    }
    if (opened !== "open") {
      // A metered session's refusal is a recorded call: its answer names the record, as any reply's does.
      const eventId = meter ? uuidv7() : null;
      const { status, body } = await relayRefusal(req, socket, opened, eventId);
      meter?.refused(status, errorTypeOf(body.toString("utf8"), status), eventId ?? undefined);
      return status;
    }
    // A client that has half-closed meanwhile cannot have a session (ws would drop it without a word).
    if (socket.destroyed || !socket.readable || !socket.writable) {
      upstream.terminate();
      socket.destroy();
      return 499;
    }
    if (upstream.protocol) this.#chosen.set(req, upstream.protocol);
    return new Promise<number>((resolve) => {
      // ws answers a handshake it finds malformed (a subprotocol list the upstream took) itself and never
      // calls back: the upstream opened for it is let go then.
      const refused = () => {
        upstream.terminate();
        resolve(400);
      };
      socket.once("close", refused);
      this.#server.handleUpgrade(req, socket, head, (downstream) => {
        socket.off("close", refused);
        upstream.off("message", keep);
        upstream.off("close", keepClose);
        session = new Session(downstream, upstream, meter, early);
        this.#sessions.add(session);
        this.deps.metrics.sockets.inc();
        this.#beat();
        void session.ended.finally(() => {
          this.#sessions.delete(session!);
          this.deps.metrics.sockets.dec();
        });
        resolve(101);
      });
    });
  }

  /** Pings every session's two sides while there are sessions (Session.heartbeat). */
  #beat(): void {
    if (this.#heartbeat || !this.#heartbeatMs) return;
    this.#heartbeat = setInterval(() => {
      if (!this.#sessions.size) {
        clearInterval(this.#heartbeat!);
        this.#heartbeat = null;
      }
      for (const s of this.#sessions) s.heartbeat();
    }, this.#heartbeatMs);
    this.#heartbeat.unref();
  }

  /** Once a shutdown has begun, a handshake is answered 503: a session opened then would hold it up. */
  #refuseWhenClosing(): void {
    if (this.#closing) throw new GatewayError(503, "api_error", "tollgate is shutting down");
  }

  /**
   * Shutdown: every session closed (1001, going away), its responses recorded; a handshake under way is
   * refused (503), and so is any later one.
   */
  async close(): Promise<void> {
    this.#closing = true;
    for (const upstream of this.#opening) upstream.terminate();
    const ending = [...this.#sessions].map((s) => {
      s.close();
      return s.ended;
    });
    await Promise.all(ending);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }
}

/** What the upstream sent, or how it closed, before the client's handshake was done. */
interface Early {
  messages: [Buffer, boolean][];
  close: { code: number; reason: Buffer } | null;
}

/** One relayed session: two sockets, messages each way, a close carried across. */
class Session {
  readonly ended: Promise<void>;

  constructor(
    private readonly client: WebSocket,
    private readonly upstream: WebSocket,
    meter: RealtimeMeter | null,
    early: Early,
  ) {
    for (const ws of [client, upstream]) ws.on("pong", () => this.#unanswered.delete(ws));
    pipe(client, upstream, meter && ((text) => meter.onClientText(text)), meter);
    const fromUpstream = pipe(upstream, client, meter && ((text) => meter.onServerText(text)), null);
    for (const [data, isBinary] of early.messages) fromUpstream(data, isBinary);
    if (early.close) closeAlso(client, early.close.code, early.close.reason);
    this.ended = Promise.all([closed(client), closed(upstream)]).then(() => meter?.end());
  }

  /**
   * A side that has not answered the last ping is dropped (its peer vanished without closing: the close
   * then carries across, its responses counted as for any leaving); the others are pinged again.
   */
  heartbeat(): void {
    for (const ws of [this.client, this.upstream]) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (this.#unanswered.has(ws)) ws.terminate();
      else {
        this.#unanswered.add(ws);
        ws.ping();
      }
    }
  }

  readonly #unanswered = new Set<WebSocket>();

  send(to: "client" | "upstream", event: Record<string, unknown>): void {
    const ws = to === "client" ? this.client : this.upstream;
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(event));
  }

  /** Closes the client's side (1001, going away); the upstream's follows once its responses are accounted for. */
  close(): void {
    if (this.client.readyState === WebSocket.CLOSED) return;
    if (this.client.readyState === WebSocket.OPEN) this.client.close(1001, "tollgate is shutting down");
    // A client that does not answer the close (a dead peer) would hold the shutdown for ws's 30 s.
    const drop = setTimeout(() => this.client.terminate(), SHUTDOWN_CLOSE_WAIT_MS);
    void this.ended.finally(() => clearTimeout(drop));
  }
}

/**
 * Messages of `from` sent on to `to`, `from` paused while `to` has too much queued; closes carried across.
 * `reads`: what reads `from`'s text messages (the meter). `cancels`: the meter whose responses
 * under way are cancelled when `from` (the client) leaves, so that their usage still comes back.
 */
function pipe(
  from: WebSocket,
  to: WebSocket,
  reads: ((text: Buffer) => void) | null,
  cancels: RealtimeMeter | null,
): (bytes: Buffer, isBinary: boolean) => void {
  const drained = () => {
    if (from.isPaused && to.bufferedAmount < LOW_BYTES) from.resume();
  };
  const onMessage = (bytes: Buffer, isBinary: boolean) => {
    if (!isBinary) reads?.(bytes); // read even with the other side gone: the usage of a cancel
    if (to.readyState !== WebSocket.OPEN) return;
    to.send(bytes, { binary: isBinary }, drained);
    if (to.bufferedAmount > HIGH_BYTES) from.pause();
  };
  // binaryType "nodebuffer": one Buffer per message.
  from.on("message", (data: RawData, isBinary: boolean) => onMessage(data as Buffer, isBinary));
  from.on("close", (code: number, reason: Buffer) => {
    if (!cancels) return closeAlso(to, code, reason);
    void cancels.cancelPending(CANCEL_WAIT_MS).then(() => closeAlso(to, code, reason));
  });
  // A close follows every error: a client's (a malformed frame, one too large) has its responses
  // cancelled first, as any client's leaving does.
  from.on("error", () => {
    if (!cancels) to.terminate();
  });
  return onMessage;
}

/** Closes `ws` as its peer closed: with its code where one may be sent, abnormally where it was. */
function closeAlso(ws: WebSocket, code: number, reason: Buffer): void {
  if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
  if (code === 1005) ws.close();
  else if (isSendable(code)) ws.close(code, reason);
  else ws.terminate(); // 1006 (the peer's connection dropped) and the like: the same, abnormal end
}

/** Close codes an endpoint may send (RFC 6455 §7.4): 1004, 1005, 1006 and 1015 are not. */
function isSendable(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

function closed(ws: WebSocket): Promise<void> {
  return ws.readyState === WebSocket.CLOSED
    ? Promise.resolve()
    : new Promise((r) => ws.once("close", () => r()));
}

function upstreamUrl(client: SocketClient): URL {
  const url = new URL(client.base.replace(/\/+$/, "") + client.route.upstreamPath);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url;
}

function upstreamHeaders(client: SocketClient): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(client.forward))
    if (!HANDSHAKE.test(name)) headers[name] = value;
  return Object.assign(headers, client.extraHeaders);
}

function offeredProtocols(req: IncomingMessage): string[] {
  const offered = req.headers["sec-websocket-protocol"];
  return offered
    ? offered
        .split(",")
        .map((p) => p.trim())
        .filter((p) => p !== "")
    : [];
}

/** The upstream refused the session: its answer goes to the client as it came (bounded). */
async function relayRefusal(
  req: IncomingMessage,
  socket: Duplex,
  up: IncomingMessage,
  eventId: string | null,
): Promise<{ status: number; body: Buffer }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of up) {
    if (size >= MAX_REFUSAL_BYTES) break;
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  const body = Buffer.concat(chunks).subarray(0, MAX_REFUSAL_BYTES);
  const status = up.statusCode ?? 502;
  answerOn(req, socket, (res) => {
    const headers = replyHeaders(up.headers);
    headers["content-length"] = String(body.length);
    if (eventId) {
      headers["x-tollgate-event-id"] = eventId;
      headers["x-tollgate-cost-usd"] = costUsd(false, false, 0n); // refused: nothing was spent
    }
    res.writeHead(status, up.statusMessage, headers);
    res.end(body);
  });
  return { status, body };
}

/** Answers an upgrade request over HTTP on its socket (a refusal), then closes the socket. */
export function answerOn(req: IncomingMessage, socket: Duplex, write: (res: ServerResponse) => void): void {
  if (socket.destroyed) return;
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once("finish", () => socket.destroy());
  write(res);
}
