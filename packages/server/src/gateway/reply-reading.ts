// What the gateway reads from a reply on the side, while its bytes go to the client as sent.
import {
  brotliDecompressSync,
  constants,
  createBrotliDecompress,
  createGunzip,
  createInflate,
  gunzipSync,
  inflateSync,
} from "node:zlib";
import { ReaderFault } from "./live-reply.js";

/** A streamed body's decoder: its bytes go in as they come, decoded ones come out to its reader in order. */
export interface StreamDecoder {
  write(chunk: Buffer): void;
  /** After the last chunk: settles once every decoded byte was handed on (rejects if they could not be). */
  end(): Promise<void>;
  /** The body broke off: nothing more is decoded. */
  destroy(): void;
}

/**
 * A decoder for a streamed reply the upstream compressed anyway (the gateway asks for identity); null
 * for identity or an encoding it does not know. A stream cut short gives what it had decoded.
 */
export function streamDecoder(
  encoding: string | null,
  onData: (chunk: Buffer) => void,
): StreamDecoder | null {
  const opts = { finishFlush: constants.Z_SYNC_FLUSH };
  const coding = encoding?.trim().toLowerCase() || "identity";
  const z =
    coding === "gzip" || coding === "x-gzip"
      ? createGunzip(opts)
      : coding === "deflate"
        ? createInflate(opts)
        : coding === "br"
          ? createBrotliDecompress({ finishFlush: constants.BROTLI_OPERATION_FLUSH })
          : null;
  if (!z) return null;
  z.on("data", (chunk: Buffer) => {
    try {
      onData(chunk);
    } catch (e) {
      z.destroy(new ReaderFault(e)); // the reader broke, not the stream: end() says why
    }
  });
  const ended = new Promise<void>((resolve, reject) => {
    z.once("end", resolve);
    z.on("error", reject);
  });
  ended.catch(() => {}); // read by end(); a destroyed decoder's rejection is nobody's
  return {
    write: (chunk) => {
      if (!z.destroyed) z.write(chunk); // bytes after a decoding error are not this stream's to read
    },
    end: () => {
      z.end();
      return ended;
    },
    destroy: () => z.destroy(),
  };
}

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
