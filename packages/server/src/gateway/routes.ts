import type { IncomingHttpHeaders } from "node:http";
import type { Api } from "@tollgate/core";
import { responseRead } from "./background.js";

/** What a gateway path is: which provider serves it, which wire format it speaks, how it is recorded. */
export interface GatewayRoute {
  family: "openai" | "anthropic";
  /** null for pass-through paths: recorded as kind=other, not priced. */
  api: Api | null;
  kind: "llm" | "embedding" | "other";
  /** Path below the upstream base URL (which already ends in /v1). */
  upstreamPath: string;
  /** A poll of an OpenAI response (`GET /v1/responses/{id}`): a finished background one is billed from it. */
  poll?: true;
  /**
   * A background response's stream resumed (`GET /v1/responses/{id}?stream=true`): relayed as it comes, and
   * the response it ends with billed as a poll's would be.
   */
  resumed?: true;
  /**
   * A read of Anthropic message batches (`GET /v1/messages/batches[/{id}]`): held whole, so that their
   * `results_url` can name the gateway and their results be read (and recorded) through it.
   */
  batches?: true;
}

const PRICED: Record<string, { family: GatewayRoute["family"]; api: Api; kind: GatewayRoute["kind"] }> = {
  "/v1/chat/completions": { family: "openai", api: "openai.chat", kind: "llm" },
  "/v1/responses": { family: "openai", api: "openai.responses", kind: "llm" },
  // A compaction runs the model over the conversation and bills it as a response: its reply
  // (`response.compaction`) reports Responses usage and names no model (the request's is priced).
  "/v1/responses/compact": { family: "openai", api: "openai.responses", kind: "llm" },
  "/v1/embeddings": { family: "openai", api: "openai.embeddings", kind: "embedding" },
  "/v1/completions": { family: "openai", api: "openai.completions", kind: "llm" },
  // Image variations (dall-e-2 only, no usage reported) pass through.
  "/v1/images/generations": { family: "openai", api: "openai.images", kind: "llm" },
  "/v1/images/edits": { family: "openai", api: "openai.images", kind: "llm" },
  // Translations (whisper-1 only, no usage reported) pass through.
  "/v1/audio/transcriptions": { family: "openai", api: "openai.transcriptions", kind: "llm" },
  // Speech: its audio relayed as it comes, priced from the request (or its event stream's usage).
  "/v1/audio/speech": { family: "openai", api: "openai.speech", kind: "llm" },
  "/v1/messages": { family: "anthropic", api: "anthropic.messages", kind: "llm" },
};

/** Tollgate's own endpoints under /v1 are never proxied. */
const OWN = new Set(["/v1/events", "/v1/traces"]);

/**
 * Classifies a request path (query string included) or returns null when it is not the gateway's. A
 * pass-through path both providers have (`/v1/models`, `/v1/files`, …) goes to Anthropic when the client
 * speaks Anthropic: its SDK sends `anthropic-version` on every request, and its key as `x-api-key`.
 * Only a POST to a model path is a model call: a GET there (`chat.completions.list()`, stored completions)
 * passes through. Without `headers` only whether the path is the gateway's is meaningful.
 */
export function classify(
  target: string,
  headers?: IncomingHttpHeaders,
  method = "POST",
): GatewayRoute | null {
  // A fragment is no part of a request's target (RFC 9112 §3.2): an upstream that parses it as a URL drops it.
  const hash = target.indexOf("#");
  const url = hash === -1 ? target : target.slice(0, hash);
  const q = url.indexOf("?");
  const query = q === -1 ? "" : url.slice(q);
  // Matched as an upstream that decodes and tidies paths would route it: a model path spelt otherwise
  // (`/v1/chat/%63ompletions`, `//`, a trailing `/`) is still a model call, priced and limited.
  const path = canonicalPath(q === -1 ? url : url.slice(0, q));
  if (path === null || !path.startsWith("/v1/") || OWN.has(path)) return null;
  // No climbing out of /v1 on the upstream (named upstreams may add credentials to every request).
  if (/(^|\/)\.\.(\/|$)/.test(path)) return null;
  const priced = method === "POST" ? PRICED[path] : undefined;
  // A model call goes upstream on its own path, however the client spelt it.
  if (priced)
    return { family: priced.family, api: priced.api, kind: priced.kind, upstreamPath: path.slice(3) + query };
  const upstreamPath = upstreamPathOf(url, path, query);
  const read = responseRead(method, path, query.slice(1));
  if (read === "poll") return { family: "openai", api: null, kind: "other", upstreamPath, poll: true };
  if (read === "resumed") return { family: "openai", api: null, kind: "other", upstreamPath, resumed: true };
  if (method === "GET" && /^\/v1\/messages\/batches(\/[^/]+)?$/.test(path))
    return { family: "anthropic", api: null, kind: "other", upstreamPath, batches: true };
  return {
    family:
      path.startsWith("/v1/messages") ||
      headers?.["anthropic-version"] !== undefined ||
      headers?.["x-api-key"] !== undefined // Anthropic's key header: never sent to OpenAI
        ? "anthropic"
        : "openai",
    api: null,
    kind: "other",
    upstreamPath,
  };
}

/**
 * The path below the upstream base URL, which ends in /v1 already: what follows the client's own /v1,
 * however it spelt that (`//v1`, `/%761`), as it sent it, query string included. Spelt stranger still
 * (`/%2Fv1`), the canonical path.
 */
function upstreamPathOf(url: string, path: string, query: string): string {
  const prefix = /^\/+(?:v|%76)(?:1|%31)(?=[/?]|$)/i.exec(url);
  return prefix ? url.slice(prefix[0].length) : path.slice(3) + query;
}

/**
 * A request path percent-decoded, as a URL parser reads it: `\` is `/` (as in WHATWG URLs), runs of `/` are
 * one, `.` segments are dropped (RFC 3986 §5.2.4; Cloudflare normalizes so), no trailing `/`. Null when it
 * does not decode.
 */
export function canonicalPath(raw: string): string | null {
  let path: string;
  try {
    path = decodeURIComponent(raw);
  } catch {
    return null;
  }
  return path
    .replaceAll("\\", "/")
    .replace(/\/{2,}/g, "/")
    .replace(/\/\.(?=\/|$)/g, "")
    .replace(/(.)\/+$/, "$1");
}
