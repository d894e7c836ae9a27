// What the gateway reads from a reply on the side, while its bytes go to the client as sent.
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";

/**
 * A reply body as text for reading usage: the upstream's bytes go to the client as sent (content-encoding
 * included), and are decoded here on the side. Null when the encoding is unknown or the bytes are not it.
 */
export function decoded(buf: Buffer, encoding: string | null): Buffer | null {
  try {
    switch (encoding?.trim().toLowerCase() || "identity") {
      case "identity":
        return buf;
      case "gzip":
      case "x-gzip":
        return gunzipSync(buf);
      case "deflate":
        return inflateSync(buf);
      case "br":
        return brotliDecompressSync(buf);
      default:
        return null;
    }
  } catch {
    return null;
  }
}

/** Tool calls a model asked for in one reply (OpenAI chat and Responses, Anthropic Messages). */
export function countToolCalls(json: Record<string, unknown>): number {
  let n = 0;
  for (const c of asArray(json.choices))
    n += asArray((c as { message?: { tool_calls?: unknown } })?.message?.tool_calls).length;
  // Anthropic's tool_use and server_tool_use (web search, code execution) blocks; every Responses *_call
  // item (function, custom, computer, shell, and the built-in tools OpenAI runs itself).
  for (const part of [...asArray(json.content), ...asArray(json.output)]) {
    const type = (part as { type?: unknown })?.type;
    if (typeof type !== "string") continue;
    if (type === "tool_use" || type === "server_tool_use" || type.endsWith("_call")) n++;
  }
  return n;
}

const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export function countEvents(text: string): number {
  let n = 0;
  for (let i = text.indexOf("data:"); i !== -1; i = text.indexOf("data:", i + 5)) n++;
  return n;
}
