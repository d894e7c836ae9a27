// What the gateway reads from a reply on the side, while its bytes go to the client as sent.
import type { Transform } from "node:stream";
import {
  brotliDecompressSync,
  constants,
  createBrotliDecompress,
  createGunzip,
  createInflate,
  gunzipSync,
  inflateSync,
} from "node:zlib";
import { REPLY_PAYLOADS, SKIM_OVER } from "@tollgate/core";
import { ReaderFault } from "./live-reply.js";
import { parseJsonObject } from "./request-body.js";
import { skimBytes } from "./skim-bytes.js";

/** A content coding the gateway reads: a whole body at once, or a stream as it comes. */
interface Coding {
  whole(buf: Buffer): Buffer;
  stream(): Transform;
}

const GZIP: Coding = {
  whole: (buf) => gunzipSync(buf),
  // A stream cut short gives what it had decoded, not an "unexpected end of file".
  stream: () => createGunzip({ finishFlush: constants.Z_SYNC_FLUSH }),
};
const CODINGS: Record<string, Coding> = {
  gzip: GZIP,
  "x-gzip": GZIP,
  deflate: {
    whole: (buf) => inflateSync(buf),
    stream: () => createInflate({ finishFlush: constants.Z_SYNC_FLUSH }),
  },
  br: {
    whole: (buf) => brotliDecompressSync(buf),
    stream: () => createBrotliDecompress({ finishFlush: constants.BROTLI_OPERATION_FLUSH }),
  },
};

/** A content-encoding header's coding: "identity" when none; undefined when the gateway cannot read it. */
function codingOf(encoding: string | null): Coding | "identity" | undefined {
  const name = encoding?.trim().toLowerCase() || "identity";
  return name === "identity" ? name : CODINGS[name];
}

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
 * for identity or an encoding it does not know.
 */
export function streamDecoder(
  encoding: string | null,
  onData: (chunk: Buffer) => void,
): StreamDecoder | null {
  const coding = codingOf(encoding);
  if (coding === "identity" || coding === undefined) return null;
  const z = coding.stream();
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
  const coding = codingOf(encoding);
  if (coding === "identity") return buf;
  try {
    return coding?.whole(buf) ?? null;
  } catch {
    return null;
  }
}

/**
 * A reply's JSON object for reading usage (null when it is none): decoded, and parsed without its
 * payloads (images, audio, embeddings) when it is large enough to carry any.
 */
export function replyJson(buf: Buffer, encoding: string | null): Record<string, unknown> | null {
  const body = decoded(buf, encoding);
  return parseJsonObject(body && body.length > SKIM_OVER ? skimBytes(body, REPLY_PAYLOADS) : body);
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
