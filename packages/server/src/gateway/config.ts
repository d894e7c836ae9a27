import { z } from "zod";
import { readYamlFile } from "../yaml-file.js";

/** The most retries a call may have (x-tollgate-retries or TOLLGATE_GATEWAY_RETRIES). */
export const MAX_RETRIES = 10;
/**
 * The most header bytes of a request, or of an upstream's reply, the gateway reads (Node's and undici's
 * default is 16 KB). A provider's own front takes more than that (a big cookie, many beta headers): a call
 * it would answer must not get a 431 or a 502 for its headers here.
 */
export const MAX_HEADER_BYTES = 64 * 1024;

/** A named upstream a client can pick with `x-tollgate-upstream: <name>` (e.g. an Azure region). */
export interface NamedUpstream {
  /** Provider the calls are priced as (e.g. azure, openai, anthropic). */
  provider: string;
  /** Base URL including the version path, e.g. https://acme-east.openai.azure.com/openai/v1 */
  baseUrl: string;
  /**
   * Extra headers sent upstream (e.g. api-version), names lower-case; they replace the client's of the same
   * name, and the client's others still pass through.
   */
  headers: Record<string, string>;
}

/** The proxy upstream calls leave through, as curl reads it from HTTPS_PROXY, HTTP_PROXY and NO_PROXY. */
export interface EgressProxy {
  /** For https:// upstreams; null: the HTTP one (or none). */
  httpsProxy: string | null;
  /** For http:// upstreams (and https:// ones when no HTTPS proxy is set). */
  httpProxy: string | null;
  /** Hosts (and host:port) reached directly, comma or space separated; `*` for all. */
  noProxy: string | null;
}

export interface GatewayConfig {
  /** OpenAI-compatible upstream, including `/v1` (TOLLGATE_OPENAI_BASE_URL). */
  openaiBaseUrl: string;
  /** Anthropic upstream, including `/v1` (TOLLGATE_ANTHROPIC_BASE_URL). */
  anthropicBaseUrl: string;
  /** Upstream timeout for headers and between body chunks (TOLLGATE_UPSTREAM_TIMEOUT_MS). */
  timeoutMs: number;
  /** The most x-tollgate-timeout-ms may ask for (TOLLGATE_UPSTREAM_TIMEOUT_MAX_MS, default 1 h). */
  maxTimeoutMs: number;
  /** Gateway-side retries on 429/5xx/connection errors unless the client sends x-tollgate-retries. */
  retries: number;
  /**
   * Connections kept per upstream origin (TOLLGATE_UPSTREAM_CONNECTIONS, default 1,024): a stream holds
   * one for its whole length, and a call finding all of them busy waits for one.
   */
  upstreamConnections: number;
  /** Refuse calls without a valid x-tollgate-key (TOLLGATE_GATEWAY_REQUIRE_KEY=1). */
  requireKey: boolean;
  upstreams: Record<string, NamedUpstream>;
  /** Null: upstreams are reached directly. */
  egressProxy: EgressProxy | null;
  /**
   * The gateway's public base URL as its clients reach it (TOLLGATE_PUBLIC_URL, e.g. https://llm.acme.com):
   * an Anthropic message batch read through the gateway names it in `results_url`, so its SDK reads the
   * results (and they are recorded) through the gateway. Null: `results_url` is relayed as sent.
   */
  publicUrl: string | null;
  /**
   * How long after a background response's submission (or a client's last poll of it) the gateway polls
   * it itself, so that it is billed though no client asks (TOLLGATE_BACKGROUND_FOLLOW_MS, default 30 s;
   * 0: never).
   */
  backgroundFollowMs: number;
  /**
   * How many background submissions still running the gateway remembers (default 10,000, as many as it
   * follows); past it the oldest is forgotten. No environment setting: tests set fewer.
   */
  backgroundRemembered?: number;
  /**
   * How long a finished background response waits for the store to say whether it is recorded already
   * (default 5 s). No environment setting: tests set less.
   */
  storeLookupMs?: number;
  /**
   * How often both sides of a WebSocket session (OpenAI Realtime) are pinged; one that has not answered
   * the last ping by the next is dropped, so a peer that vanished without closing ends its session
   * (TOLLGATE_WS_HEARTBEAT_MS, default 30 s; 0: never).
   */
  wsHeartbeatMs: number;
  /**
   * How long a call of an agent run waits while the run's calls in flight hold what is left under its cost
   * or token ceiling (they settle, and it goes or the run is killed), before a 429 tells its client to retry
   * (TOLLGATE_RUN_HOLD_WAIT_MS, default 30 s; 0: answer at once). Parallel branches of an agent then take
   * turns near the ceiling instead of failing.
   */
  runHoldWaitMs: number;
}

const UpstreamsFile = z.strictObject({
  upstreams: z.record(
    z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "names are 1-64 letters, digits, _ . -"),
    z.strictObject({
      provider: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "1-64 letters, digits, _ . -"),
      base_url: z.string().superRefine((url, ctx) => {
        const problem = upstreamBaseUrlProblem(url);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      }),
      headers: z.record(z.string(), z.string()).default({}),
    }),
  ),
});

/** Reads the named-upstreams YAML/JSON file; errors name the file and the failing path. */
export function loadUpstreams(path: string): Record<string, NamedUpstream> {
  const res = UpstreamsFile.safeParse(readYamlFile(path, "upstreams file"));
  if (!res.success)
    throw new Error(
      `${path}: ${res.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  return Object.fromEntries(
    Object.entries(res.data.upstreams).map(([name, u]) => [
      name,
      {
        provider: u.provider,
        baseUrl: u.base_url.replace(/\/+$/, ""),
        // Lower-cased as the client's are: `Api-Key` here replaces the client's `api-key`, not joins it.
        headers: Object.fromEntries(Object.entries(u.headers).map(([k, v]) => [k.toLowerCase(), v])),
      },
    ]),
  );
}

function intFromEnv(name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${raw}`);
  if (n > max) throw new Error(`${name} must be at most ${max}, got ${raw}`);
  return n;
}

function positiveIntFromEnv(name: string, fallback: number): number {
  const n = intFromEnv(name, fallback);
  if (n < 1) throw new Error(`${name} must be at least 1, got ${n}`);
  return n;
}

/** The most x-tollgate-timeout-ms may ask for: at least 1 ms, or no header could ever pass. */
function maxTimeoutFromEnv(): number {
  return positiveIntFromEnv("TOLLGATE_UPSTREAM_TIMEOUT_MAX_MS", 3_600_000);
}

export function gatewayConfigFromEnv(
  overrides: Partial<GatewayConfig> = {},
  upstreamsPath?: string | null,
): GatewayConfig {
  const file = upstreamsPath ?? process.env.TOLLGATE_UPSTREAMS ?? null;
  return {
    // Empty is unset, as for the other settings: "" would be no upstream at all.
    openaiBaseUrl: baseUrlFromEnv("TOLLGATE_OPENAI_BASE_URL", "https://api.openai.com/v1"),
    anthropicBaseUrl: baseUrlFromEnv("TOLLGATE_ANTHROPIC_BASE_URL", "https://api.anthropic.com/v1"),
    // 0 would be "no timeout" to undici but "at once" to the gateway's own timers: refused.
    timeoutMs: positiveIntFromEnv("TOLLGATE_UPSTREAM_TIMEOUT_MS", 600_000),
    maxTimeoutMs: maxTimeoutFromEnv(),
    retries: intFromEnv("TOLLGATE_GATEWAY_RETRIES", 0, MAX_RETRIES),
    upstreamConnections: positiveIntFromEnv("TOLLGATE_UPSTREAM_CONNECTIONS", 1024),
    requireKey: process.env.TOLLGATE_GATEWAY_REQUIRE_KEY === "1",
    upstreams: file ? loadUpstreams(file) : {},
    egressProxy: egressProxyFromEnv(process.env),
    publicUrl: publicUrlFromEnv(process.env.TOLLGATE_PUBLIC_URL),
    backgroundFollowMs: intFromEnv("TOLLGATE_BACKGROUND_FOLLOW_MS", 30_000, 3_600_000),
    wsHeartbeatMs: intFromEnv("TOLLGATE_WS_HEARTBEAT_MS", 30_000, 3_600_000),
    runHoldWaitMs: intFromEnv("TOLLGATE_RUN_HOLD_WAIT_MS", 30_000, 3_600_000),
    ...overrides,
  };
}

/**
 * Why an upstream base URL cannot be used as given (null: it can). Each call goes to its origin, under its
 * path: credentials, a query or a fragment in it would be dropped from every call without a word.
 */
export function upstreamBaseUrlProblem(raw: string): string | null {
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {}
  if (url?.protocol !== "http:" && url?.protocol !== "https:")
    return "must be an http(s) URL, e.g. https://api.openai.com/v1";
  if (url.username || url.password) return "must not carry credentials (send them as headers)";
  if (raw.includes("?") || raw.includes("#"))
    return "must have no query or fragment (a client's query, Azure's api-version say, goes upstream with its call)";
  return null;
}

/** An upstream base URL from the environment (empty is unset): checked, without its trailing slashes. */
function baseUrlFromEnv(name: string, fallback: string): string {
  const raw = process.env[name] || fallback;
  const problem = upstreamBaseUrlProblem(raw);
  if (problem) throw new Error(`${name} ${problem}, got ${JSON.stringify(redactPassword(raw))}`);
  return raw.replace(/\/+$/, "");
}

/**
 * The gateway's public URL as clients reach it: http(s), without credentials (every client would be told
 * them), query or fragment, and without the /v1 the gateway adds; normalised, no trailing slash. Null: unset.
 */
export function publicUrlFromEnv(v: string | undefined): string | null {
  const raw = v?.trim();
  if (!raw) return null;
  const refuse = (why: string) =>
    new Error(`TOLLGATE_PUBLIC_URL ${why}, e.g. https://llm.example.com; got ${JSON.stringify(v)}`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refuse("must be a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw refuse("must be an http(s) URL");
  if (url.username || url.password) throw refuse("must not carry credentials (clients are told it)");
  if (raw.includes("?") || raw.includes("#")) throw refuse("must have no query or fragment");
  const base = url.href.replace(/\/+$/, "");
  if (/\/v1$/.test(base)) throw refuse("is the gateway's URL without /v1 (the gateway adds it)");
  return base;
}

/** HTTPS_PROXY / HTTP_PROXY / NO_PROXY, lower-case first as curl does; null when neither proxy is set. */
export function egressProxyFromEnv(env: NodeJS.ProcessEnv): EgressProxy | null {
  const read = (name: string) => env[name.toLowerCase()] || env[name] || null;
  const proxyUrl = (name: string) => {
    const v = read(name);
    if (v === null) return null;
    let url: URL | null = null;
    try {
      url = new URL(v);
    } catch {}
    if (url?.protocol !== "http:" && url?.protocol !== "https:")
      throw new Error(
        `${name} must be a proxy URL such as http://proxy.internal:3128, got ${JSON.stringify(redactPassword(v))}`,
      );
    return v;
  };
  const httpsProxy = proxyUrl("HTTPS_PROXY");
  const httpProxy = proxyUrl("HTTP_PROXY");
  if (!httpsProxy && !httpProxy) return null;
  return { httpsProxy, httpProxy, noProxy: read("NO_PROXY") };
}

/** The start-up line that says where upstream calls go (passwords left out). */
export function describeEgress(p: EgressProxy): string {
  const via = [
    p.httpsProxy && `HTTPS_PROXY ${redactPassword(p.httpsProxy)}`,
    p.httpProxy && `HTTP_PROXY ${redactPassword(p.httpProxy)}`,
  ].filter(Boolean);
  return `upstream calls leave through ${via.join(", ")}${p.noProxy ? `, except NO_PROXY ${p.noProxy}` : ""}`;
}

/** A URL (a proxy's, an upstream's) without its password, for logs and errors. */
function redactPassword(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}
