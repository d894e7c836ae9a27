import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { ApiError, badRequest } from "../errors.js";

const gunzipAsync = promisify(gunzip);

/**
 * A request body as sent under its `content-encoding` (identity or gzip), inflated to at most `maxBytes`
 * (a small gzip bomb must not take the process's memory: past it, 413). Another encoding is a 415, a body
 * that is not the gzip it claims a 400.
 */
export async function decodeContent(
  encoding: string | undefined,
  bytes: Uint8Array,
  maxBytes: number,
): Promise<Uint8Array> {
  const e = (encoding ?? "identity").trim().toLowerCase();
  if (e === "identity" || e === "") return bytes;
  if (e !== "gzip")
    throw new ApiError(
      415,
      "invalid_request_error",
      "unsupported_content_encoding",
      `content-encoding must be gzip or identity, got ${JSON.stringify(e)}`,
      "content-encoding",
    );
  try {
    return await gunzipAsync(bytes, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
      throw new ApiError(
        413,
        "invalid_request_error",
        "body_too_large",
        `the gzip body inflates past ${maxBytes} bytes; send less per request`,
      );
    throw badRequest(
      "invalid_gzip",
      `content-encoding is gzip but the body is not: ${(err as Error).message}`,
    );
  }
}
