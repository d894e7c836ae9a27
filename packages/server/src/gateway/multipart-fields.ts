// The fields of a multipart/form-data request body (an OpenAI image edit: its model, n, size, stream, and
// the images it sends), read as a JSON body would say them, so that the call is priced and limited alike.
// The body itself goes upstream as the client sent it.
import { GatewayError } from "./gateway-error.js";

/** Text fields that carry a number or a flag (a form sends every value as text). */
const NUMBERS: ReadonlySet<string> = new Set(["n", "partial_images", "output_compression"]);
const FLAGS: ReadonlySet<string> = new Set(["stream"]);
/** A text field longer than this is not kept (a prompt runs to 32,000 characters). */
const MAX_TEXT_BYTES = 256 * 1024;

/** A file part: what the pricing needs of it is that it is there, and its size (an audio file's most length). */
export interface FilePart {
  filename: string;
  /** Its bytes, as a File's `size` says them. */
  size: number;
}

/**
 * The parts of a multipart/form-data body by name: text fields as text (numbers and flags converted),
 * file parts as FilePart, a name sent more than once as an array. A text field sent more than once is
 * refused (GatewayError 400): which copy the upstream reads is its parser's choice, and a copy the call is
 * not priced by (a second `model`, `size`, `n`) would make its hold the wrong one. A list's name ends in
 * `[]` (`timestamp_granularities[]`, as the SDKs send one), and files may come several under one name.
 * Null when the content type is not multipart/form-data or the body is not well formed.
 */
export function multipartFields(
  body: Buffer,
  contentType: string | undefined,
): Record<string, unknown> | null {
  const boundary = boundaryOf(contentType);
  if (boundary === null) return null;
  const delimiter = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delimiter);
  if (at === -1) return null;
  const fields: Record<string, unknown> = {};
  /** The names sent so far, and whether every part under each was a file. */
  const filesOnly = new Map<string, boolean>();
  for (;;) {
    at += delimiter.length;
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return fields; // the closing delimiter
    if (body[at] !== 0x0d || body[at + 1] !== 0x0a) return null;
    const headersEnd = body.indexOf("\r\n\r\n", at + 2);
    if (headersEnd === -1) return null;
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headersEnd + 4);
    if (next === -1) return null;
    const part = partOf(body.toString("latin1", at + 2, headersEnd), body, headersEnd + 4, next);
    if (part === null) return null;
    const file = typeof part.value === "object"; // a FilePart
    const before = filesOnly.get(part.name);
    if (before !== undefined && !(before && file) && !part.name.endsWith("[]"))
      throw GatewayError.repeated("form field", part.name);
    filesOnly.set(part.name, file && before !== false);
    if (part.value !== undefined) add(fields, part.name, part.value);
    at = next + 2;
  }
}

function boundaryOf(contentType: string | undefined): string | null {
  if (!contentType || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return null;
  // RFC 2046 allows 70 characters; a longer one from a lenient client is read all the same.
  const m = /;\s*boundary=(?:"([^"]{1,200})"|([^;\s]{1,200}))/i.exec(contentType);
  return m ? (m[1] ?? m[2]!) : null;
}

/** One part's name and value (undefined: a text field too long to keep); null when it names none. */
function partOf(
  headers: string,
  body: Buffer,
  start: number,
  end: number,
): { name: string; value: unknown } | null {
  const disposition = /^content-disposition:\s*form-data\s*;(.*)$/im.exec(headers)?.[1];
  if (disposition === undefined) return null;
  const name = paramOf(disposition, "name");
  if (name === null) return null;
  const filename = paramOf(disposition, "filename");
  if (filename !== null) return { name, value: { filename, size: end - start } satisfies FilePart };
  if (end - start > MAX_TEXT_BYTES) return { name, value: undefined };
  const text = body.toString("utf8", start, end);
  if (NUMBERS.has(name) && /^\d{1,9}$/.test(text)) return { name, value: Number(text) };
  // Python's requests sends True as "True"; a form's flag may be 1 or 0.
  if (FLAGS.has(name) && /^(true|1)$/i.test(text)) return { name, value: true };
  if (FLAGS.has(name) && /^(false|0)$/i.test(text)) return { name, value: false };
  return { name, value: text };
}

/** A Content-Disposition parameter, quoted (with backslash escapes) or not. Header bytes are read as UTF-8. */
function paramOf(disposition: string, param: string): string | null {
  const m = new RegExp(`(?:^|;)\\s*${param}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, "i").exec(
    disposition,
  );
  if (!m) return null;
  const raw = m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]!;
  return Buffer.from(raw, "latin1").toString("utf8");
}

function add(fields: Record<string, unknown>, name: string, value: unknown): void {
  const had = fields[name];
  if (had === undefined) fields[name] = value;
  else if (Array.isArray(had)) had.push(value);
  else fields[name] = [had, value];
}
