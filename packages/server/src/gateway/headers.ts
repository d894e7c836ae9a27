import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";

/** Attribution taken from x-tollgate-* request headers (DESIGN.md "Attribution headers"). */
export interface Attribution {
  user_id?: string;
  customer_id?: string;
  feature?: string;
  deployment?: string;
  prompt_version?: string;
  agent_run_id?: string;
  agent_type?: string;
  session_id?: string;
  route?: string;
  variant?: string;
  tags?: string[];
  metadata?: Record<string, string>;
}

const FIELD_OF: Record<string, keyof Attribution> = {
  "x-tollgate-user-id": "user_id",
  "x-tollgate-customer-id": "customer_id",
  "x-tollgate-feature": "feature",
  "x-tollgate-deployment": "deployment",
  "x-tollgate-prompt-version": "prompt_version",
  "x-tollgate-agent-run-id": "agent_run_id",
  "x-tollgate-agent-type": "agent_type",
  "x-tollgate-session-id": "session_id",
  "x-tollgate-route": "route",
  "x-tollgate-variant": "variant",
};

const HEADER_OF: Record<string, string> = Object.fromEntries(
  Object.entries(FIELD_OF).map(([header, field]) => [field, header]),
);

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1), ones the proxy sets itself, and `expect` (the gateway has read
 * the whole body by then; undici refuses the header, and curl sends `100-continue` past 1 KB).
 * `proxy-authorization` and `proxy-authenticate` are a proxy's own credentials and challenge (RFC 9110
 * §11.7): they end at the hop they were meant for, never reach the provider (or the client), and undici's
 * egress proxy agent refuses a request that carries one.
 */
const HOP = new Set([
  "expect",
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "host",
  "content-length",
  "accept-encoding",
]);

export interface SplitHeaders {
  forward: Record<string, string>;
  attribution: Attribution;
  /** x-tollgate-* controls that are not attribution (key, upstream, retries, timeout-ms, span-depth). */
  control: Record<string, string>;
}

/**
 * Splits a client's headers: everything but hop-by-hop and x-tollgate-* goes upstream untouched (the
 * provider key included, never logged); x-tollgate-* becomes attribution or gateway controls.
 */
export function splitHeaders(headers: IncomingHttpHeaders): SplitHeaders {
  const forward: Record<string, string> = {};
  const attribution: Attribution = {};
  const control: Record<string, string> = {};
  // for…in, not Object.entries: no array of pairs per request.
  for (const name in headers) {
    const raw = headers[name];
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? raw.join(", ") : raw;
    if (!name.startsWith("x-tollgate-")) {
      if (!HOP.has(name)) forward[name] = value;
      continue;
    }
    const field = FIELD_OF[name];
    if (field) {
      if (value !== "") (attribution as Record<string, string>)[field] = utf8Text(value); // empty: not sent
    } else if (name === "x-tollgate-tags")
      attribution.tags = utf8Text(value)
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean);
    else if (name.startsWith("x-tollgate-meta-")) {
      // Added in place: a copy per header made 2,000 of them take ~0.4 s, before any key was checked. Defined,
      // not assigned, so that a "__proto__" key is one of its own (which the record refuses).
      attribution.metadata ??= {};
      Object.defineProperty(attribution.metadata, name.slice(16), {
        value: utf8Text(value),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else control[name.slice(11)] = value;
  }
  dropConnectionListed(forward, headers.connection);
  // Usage is read from the body, so ask the upstream for plain bytes.
  forward["accept-encoding"] = "identity";
  return { forward, attribution, control };
}

/**
 * A header value as the text its client meant: Node reads header bytes as Latin-1, but a client that
 * sends non-ASCII attribution (curl, most HTTP libraries) sends UTF-8. Bytes that are not UTF-8 stay Latin-1.
 */
function utf8Text(value: string): string {
  if (!NON_ASCII.test(value)) return value;
  const text = Buffer.from(value, "latin1").toString("utf8");
  return text.includes("\uFFFD") ? value : text;
}
const NON_ASCII = /[^\x00-\x7f]/;

/** The x-tollgate-* header a record field's attribution came from (a field error names it so). */
export function headerOfField(field: string): string {
  const dot = field.indexOf(".");
  const top = dot === -1 ? field : field.slice(0, dot);
  if (top === "tags") return "x-tollgate-tags";
  if (top === "metadata") return dot === -1 ? "x-tollgate-meta-*" : `x-tollgate-meta-${field.slice(dot + 1)}`;
  return HEADER_OF[top] ?? field;
}

export type HeaderMap = Record<string, string | string[] | undefined>;

/**
 * `alt-svc` (RFC 7838) offers other ways to reach the origin that sent it: relayed, it would tell the client
 * that the gateway's origin offers the provider's (h3 on :443, say).
 */
const UPSTREAM_ORIGIN_ONLY = "alt-svc";

/**
 * Upstream response headers to pass to the client (hop-by-hop, framing and `alt-svc` dropped; Node sets
 * its own). `content-encoding` stays: the body goes to the client as the upstream sent it.
 */
export function replyHeaders(headers: HeaderMap): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP.has(name) || name === UPSTREAM_ORIGIN_ONLY) continue;
    out[name] = value;
  }
  dropConnectionListed(out, headers.connection);
  return out;
}

/** Headers a `Connection` header names are hop-by-hop too (RFC 9110 §7.6.1). */
function dropConnectionListed(
  headers: Record<string, unknown>,
  connection: string | string[] | undefined,
): void {
  if (connection === undefined) return;
  for (const token of String(connection).split(",")) {
    const name = token.trim().toLowerCase();
    if (name !== "close" && name !== "keep-alive") delete headers[name];
  }
}

/** A header's (first) value, or null when absent. */
export function headerValue(headers: HeaderMap, name: string): string | null {
  const v = headers[name];
  return v === undefined ? null : Array.isArray(v) ? (v[0] ?? null) : v;
}
