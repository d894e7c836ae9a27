// A gateway request's body: read whole (a model call, to be priced and guarded) or left to stream
// upstream (a big pass-through upload), parsed, and edited byte for byte where the gateway must.
import type { IncomingMessage } from "node:http";
import { promisify } from "node:util";
import { brotliDecompress, gunzip, inflate } from "node:zlib";
import { type Api, EMBEDDING_INPUTS, SKIM_OVER, skimmedLength } from "@tollgate/core";
import { GatewayError } from "./gateway-error.js";
import { prependMember, replaceSpans, topLevelValueSpans } from "./json-splice.js";
import { multipartFields } from "./multipart-fields.js";
import { skimBytes, skimRequest } from "./skim-bytes.js";

export const MAX_REQUEST_BYTES = 32 * 1024 * 1024;
/**
 * The most an image request's body may be: an edit sends its images in it (up to 16, of up to 50 MB each at
 * OpenAI). It is held whole all the same, to be priced and limited before it is sent.
 */
export const MAX_IMAGE_REQUEST_BYTES = 128 * 1024 * 1024;

/**
 * A pass-through upload larger than this (or of unknown length) is sent upstream as it comes, not held:
 * file uploads run to hundreds of MB. Such a body can be sent once only, so its call is not retried.
 */
const UPLOAD_BUFFER_BYTES = 1024 * 1024;

export const EMPTY_BODY = Buffer.alloc(0);

/** A request body too big to hold (see UPLOAD_BUFFER_BYTES), or of a length not known up front. */
export function isBigUpload(req: IncomingMessage): boolean {
  const declared = req.headers["content-length"];
  if (declared === undefined) return req.headers["transfer-encoding"] !== undefined;
  return Number(declared) > UPLOAD_BUFFER_BYTES;
}

/** A model call's request as its fields: a JSON body's, or a multipart form's (an image edit's). */
export function parseModelRequest(body: Buffer, contentType: string | undefined, api?: Api): ModelRequest {
  const form = multipartFields(body, contentType);
  if (form || body.length <= SKIM_OVER) return { fields: form ?? parseJsonObject(body) };
  // An embeddings request's texts: read by nothing, held by the request's bytes (no marks needed).
  if (api === "openai.embeddings") return { fields: parseJsonObject(skimBytes(body, EMBEDDING_INPUTS)) };
  // Parsed whole, a request of 5 MB of base64 image held the event loop ~50 ms (every call through the
  // gateway waited): its media is left out, each as a mark naming its length.
  const skimmed = skimRequest(body);
  const fields = parseJsonObject(skimmed.body);
  // stream_options goes back upstream as the gateway writes it (withIncludeUsage): never with a mark in it.
  if (fields && skimmedLength(fields.stream_options, skimmed.mark) > 0)
    return { fields: parseJsonObject(body) };
  return { fields, skimMark: skimmed.mark };
}

/** A model call's request as read: its fields (null when it is neither JSON nor a form), and its skim's mark. */
export interface ModelRequest {
  fields: Record<string, unknown> | null;
  /** Set when its media was left out (RawBody.skimMark). */
  skimMark?: string;
}

/**
 * Reads the request body, up to `max` bytes (past it: 413), with plain events (an async iterator costs
 * measurable latency per request).
 */
export function readBody(req: IncomingMessage, max = MAX_REQUEST_BYTES): Promise<Buffer> {
  // A body that came with the request's headers is buffered by the time the handler asks for it: taken
  // at once, it skips the stream's 'data' and 'end' ticks (tens of µs on an idle gateway).
  const declared = req.headers["content-length"];
  if (
    declared !== undefined &&
    req.readableFlowing === null &&
    req.readableLength === Number(declared) &&
    req.readableLength <= max
  )
    return Promise.resolve((req.read() as Buffer | null) ?? EMPTY_BODY);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is read and dropped, so the 413 can still be answered on this connection.
      if (size > max)
        reject(new GatewayError(413, "invalid_request_error", `request body exceeds ${max} bytes`));
      else chunks.push(chunk);
    });
    req.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.once("error", (e) => reject(new ClientLeft(e)));
  });
}

/** How long, and how far, the rest of a refused request's body is read before its answer. */
const DRAIN_MS = 500;
const DRAIN_BYTES = 64 * 1024 * 1024;

/**
 * Reads and drops the rest of a request's body, for DRAIN_MS and DRAIN_BYTES at most, before an answer
 * given without it (a refusal): came whole, its connection stays usable and its client, still sending,
 * reads the answer instead of a reset. True when it came whole; otherwise the answer closes the
 * connection (writeHead, the API's listener), so no unread byte is taken for the next request.
 */
export function drainBody(req: IncomingMessage): Promise<boolean> {
  if (req.complete || req.destroyed) return Promise.resolve(req.complete);
  // Its readers so far are done with it (readBody past the limit, a web stream the API no longer pulls,
  // which would pause it again), as Node's own dump of an unread body takes it from them.
  req.removeAllListeners("data");
  return new Promise((resolve) => {
    let bytes = 0;
    const done = () => {
      clearTimeout(timer);
      req.off("data", onData).off("end", done).off("close", done).off("error", done);
      resolve(req.complete);
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > DRAIN_BYTES) done();
    };
    const timer = setTimeout(done, DRAIN_MS);
    req.on("data", onData).once("end", done).once("close", done).once("error", done);
    req.resume();
  });
}

type Decode = (buf: Buffer, options: { maxOutputLength: number }) => Promise<Buffer>;
const GUNZIP = promisify(gunzip) as Decode;
/** The codings a model call's body may come in (RFC 9110 §8.4.1), as the reply side reads them. */
const DECODERS = new Map<string, Decode>([
  ["gzip", GUNZIP],
  ["x-gzip", GUNZIP],
  ["deflate", promisify(inflate) as Decode],
  ["br", promisify(brotliDecompress) as Decode],
]);

/**
 * A model call's body sent compressed (`content-encoding`; Anthropic's API takes gzip): read as it came, it
 * would be neither priced nor limited, nor seen to stream. Decoded here, up to `max` bytes (past them: 413),
 * it is read and sent upstream as a plain body is. A coding the gateway cannot read is refused (415), not
 * forwarded unread.
 */
export async function decodeBody(body: Buffer, encoding: string, max: number): Promise<Buffer> {
  const codings = encoding.split(",").map((c) => c.trim().toLowerCase());
  // Codings are listed in the order they were applied: undone last first.
  for (const name of codings.reverse()) {
    if (name === "" || name === "identity") continue;
    const decode = DECODERS.get(name);
    if (!decode)
      throw new GatewayError(
        415,
        "invalid_request_error",
        `content-encoding ${JSON.stringify(name)} is not supported on a model call (gzip, deflate and br are)`,
      );
    try {
      body = await decode(body, { maxOutputLength: max });
    } catch (e) {
      if ((e as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE")
        throw new GatewayError(413, "invalid_request_error", `request body exceeds ${max} bytes decoded`);
      throw new GatewayError(400, "invalid_request_error", `request body is not valid ${name}`);
    }
  }
  return body;
}

/** The client went away while its request was being read: nobody is left to answer. */
export class ClientLeft extends Error {
  constructor(override readonly cause: unknown) {
    super("the client closed the connection while sending its request");
  }
}

/**
 * Whether a stream request's stream_options leave usage out, so the gateway may ask for it: absent, null,
 * or an object whose include_usage is absent, null or false. Anything else (a string, include_usage: 1)
 * is the upstream's to refuse, and is sent as it came.
 */
export function usageNotAsked(options: unknown): boolean {
  if (options === undefined || options === null) return true;
  if (typeof options !== "object" || Array.isArray(options)) return false;
  const asked = (options as { include_usage?: unknown }).include_usage;
  return asked === undefined || asked === null || asked === false;
}

/**
 * The request with stream_options.include_usage set, edited in the client's bytes: without stream_options
 * (the usual case) the member is put first; an existing one has only its own value rewritten.
 */
export function withIncludeUsage(body: Buffer, parsed: Record<string, unknown>): Buffer {
  const own = parsed.stream_options;
  const value = JSON.stringify(Object.assign({}, own, { include_usage: true }));
  if (own === undefined) return prependMember(body, "stream_options", value);
  // Every copy of a repeated member: whichever one the upstream's parser keeps then asks for usage.
  return replaceSpans(body, topLevelValueSpans(body, "stream_options"), value);
}

export function parseJsonObject(buf: Buffer | null): Record<string, unknown> | null {
  if (!buf || buf.length === 0) return null;
  try {
    // A byte-order mark is not JSON, but some clients send one; the bytes go upstream as they came.
    const start = buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
    const v = JSON.parse(buf.toString("utf8", start));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}
