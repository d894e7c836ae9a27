// The gateway's own answers and the names it records failures by: its errors in the provider's shape,
// and why an attempt failed or was cut short.
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { CallRecord } from "@tollgate/core";
import { recordCostUsd } from "../cost-usd.js";
import type { LimitError } from "../limits/limit-error.js";
import { ClientStalled } from "./client-watch.js";
import { ReaderFault } from "./live-reply.js";
import type { GatewayRoute } from "./routes.js";

/**
 * The longest retry-after the openai and Anthropic SDKs wait for; past it (or without one) they retry a
 * 429 on their own backoff, which a killed run or a budget spent until its window resets never passes.
 */
const SDK_RETRY_WAIT_MAX_S = 60;

/** A failure that the gateway itself answers, in the provider's error shape. */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly code: string = type,
    readonly extra: Record<string, unknown> = {},
    readonly retryAfterS: number | null = null,
  ) {
    super(message);
  }

  /** The record of the attempt this error answers, when there is one: its id and cost go in the reply. */
  recorded: CallRecord | null = null;

  /** A refusal that will not clear within the SDKs' retry horizon: told so (x-should-retry: false). */
  final = false;

  withRecord(rec: CallRecord | null): this {
    this.recorded = rec;
    return this;
  }

  /** A fault of the gateway's own, answered as the upstream's would be: 502. */
  static internal(e: unknown): GatewayError {
    return new GatewayError(502, "api_error", `gateway error: ${(e as Error).message}`);
  }

  /**
   * A parameter that takes one value given more than once (a form field, a query parameter): which copy the
   * upstream reads is its parser's choice, so the call could be priced and held by one and run as another.
   */
  static repeated(what: string, param: string): GatewayError {
    return new GatewayError(
      400,
      "invalid_request_error",
      `${what} ${JSON.stringify(param)} is repeated: send it once (the call is priced and limited by what ` +
        "the request says, and which copy the upstream would read is its own choice)",
      "repeated_parameter",
      { param },
    );
  }

  static fromLimit(e: LimitError): GatewayError {
    const err = new GatewayError(e.status, e.type, e.message, e.code, e.details, e.retryAfterS);
    err.final = e.retryAfterS === null || e.retryAfterS > SDK_RETRY_WAIT_MAX_S;
    return err;
  }
}

export function isTimeout(e: unknown): boolean {
  const code = (e as { code?: string } | null)?.code;
  return code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT";
}

/** Connecting to the upstream (TCP, TLS) took too long: nothing of the request reached it. */
export function isConnectTimeout(e: unknown): boolean {
  return (e as { code?: string } | null)?.code === "UND_ERR_CONNECT_TIMEOUT";
}

/** The provider's own error type (`rate_limit_error`, …) when its body says, else http_<status>. */
export function errorTypeOf(text: string, status: number): string {
  // The first type that is not "error": Anthropic's body is {"type":"error","error":{"type":"rate_limit_error"}}.
  for (const m of text.matchAll(/"type"\s*:\s*"([a-z_]{1,64})"/g)) if (m[1] !== "error") return m[1]!;
  return `http_${status}`;
}

/**
 * Writes a reply's head. A reply that goes out before its request's body was read to its end (an upload
 * the upstream answered early or failed in, a refusal before the body was read) closes the connection
 * after it, as an upstream that answers early does: a client still sending would otherwise wait on a
 * connection nobody reads (undici destroys the request an upload was piped from, and with it the reading).
 */
export function writeHead(res: ServerResponse, status: number, headers: OutgoingHttpHeaders): void {
  if (!res.req.complete) res.shouldKeepAlive = false;
  res.writeHead(status, headers);
}

/** Errors the gateway itself raises, shaped like the provider's so its SDK raises a typed error. */
export function sendError(res: ServerResponse, route: GatewayRoute, err: GatewayError): void {
  const body =
    route.family === "anthropic"
      ? { type: "error", error: { type: err.type, code: err.code, message: err.message, ...err.extra } }
      : { error: { message: err.message, type: err.type, param: null, code: err.code, ...err.extra } };
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  };
  if (err.retryAfterS !== null) headers["retry-after"] = String(err.retryAfterS);
  if (err.final) headers["x-should-retry"] = "false";
  if (err.recorded) {
    headers["x-tollgate-event-id"] = err.recorded.event_id;
    headers["x-tollgate-cost-usd"] = recordCostUsd(err.recorded);
  }
  writeHead(res, err.status, headers);
  res.end(text);
}

/** Why a relayed reply ended before its end, as its record's error_type says it. */
export function cutShortReason(clientGone: boolean, failure: unknown): string {
  if (clientGone) return "client_disconnected";
  if (failure instanceof ReaderFault) return "gateway_error";
  if (failure instanceof ClientStalled) return "client_stalled";
  return isTimeout(failure) ? "timeout" : "upstream_stream_broken";
}

/**
 * The upstream error (its /metrics kind) that cut a relayed reply short after its head came; null when
 * nothing did, or the upstream is not why (its client left or stalled, or the gateway's own reader broke).
 */
export function brokenUpstreamKind(clientGone: boolean, failure: unknown): "timeout" | "connection" | null {
  if (failure === null) return null;
  const reason = cutShortReason(clientGone, failure);
  return reason === "timeout" ? "timeout" : reason === "upstream_stream_broken" ? "connection" : null;
}

/** The gateway's own answer to an upstream that timed out or broke the connection. */
export function upstreamFailure(
  e: unknown,
  timeoutMs: number,
  phase: "connect" | "answer" | "body",
  connectTimeoutMs?: number,
): GatewayError {
  // "connect": the request timed out before undici started it (connecting, or the egress proxy's tunnel).
  if (phase === "connect")
    return new GatewayError(
      504,
      "timeout_error",
      `upstream did not take the connection within ${connectTimeoutMs} ms`,
    );
  if (isTimeout(e))
    return new GatewayError(
      504,
      "timeout_error",
      phase === "answer"
        ? `upstream did not answer within ${timeoutMs} ms`
        : `upstream body did not arrive within ${timeoutMs} ms`,
    );
  const why = (e as Error).message;
  return new GatewayError(
    502,
    "api_error",
    phase === "answer"
      ? `upstream connection failed: ${why}`
      : `upstream failed while sending the body: ${why}`,
  );
}
