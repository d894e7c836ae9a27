// Random bytes are drawn from a pool refilled 4 KiB at a time: one getRandomValues call per id costs
// more than the rest of the id (it showed up in the gateway's profile).
const POOL = new Uint8Array(4096);
let poolPos = POOL.length;

function randomBytes10(): Uint8Array {
  if (poolPos + 10 > POOL.length) {
    globalThis.crypto.getRandomValues(POOL);
    poolPos = 0;
  }
  poolPos += 10;
  return POOL.subarray(poolPos - 10, poolPos);
}

/** Char codes of the two hex digits of each byte value: HEX_CODES[2b], HEX_CODES[2b + 1]. */
const HEX_CODES = new Uint8Array(512);
for (let b = 0; b < 256; b++) {
  const hex = b.toString(16).padStart(2, "0");
  HEX_CODES[2 * b] = hex.charCodeAt(0);
  HEX_CODES[2 * b + 1] = hex.charCodeAt(1);
}
/** Where each of the 16 bytes goes among the 36 characters of 8-4-4-4-12. */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
/** The id's characters, reused: dashes stay put, digits are overwritten per id. */
const CHARS = new Uint8Array(36).fill(0x2d);
const BYTES = new Uint8Array(16);
// UTF-8: the digits and dashes are ASCII, and every runtime has it (a Node built without ICU has no latin1).
const TEXT = new TextDecoder();

/**
 * UUID v7 (RFC 9562): 48-bit ms timestamp + random bits, so ids sort by time and make good
 * idempotency keys. `random` may supply the 10 random bytes (seeded demo data stays reproducible).
 * The text is made in one piece from char codes: joining 20 pieces made ~1 KB of garbage per id (two ids
 * per gateway call).
 */
export function uuidv7(ms: number = Date.now(), random?: Uint8Array): string {
  const b = BYTES;
  let t = ms;
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  const r = random ?? randomBytes10();
  if (r.length < 10) b.fill(0, 6 + r.length); // short given bytes leave zeros, never the last id's bytes
  b.set(r.subarray(0, 10), 6);
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  for (let i = 0; i < 16; i++) {
    CHARS[AT[i]!] = HEX_CODES[2 * b[i]!]!;
    CHARS[AT[i]! + 1] = HEX_CODES[2 * b[i]! + 1]!;
  }
  return TEXT.decode(CHARS);
}

/** The creation time (epoch ms) a UUID v7 carries in its first 48 bits; null for any other UUID. */
export function uuidv7Time(id: string): number | null {
  if (id.length !== 36 || id[14] !== "7") return null;
  const ms = Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
  return Number.isFinite(ms) ? ms : null;
}

/**
 * A UUID (version 8, RFC 9562 custom layout) from the SHA-256 of a name, as 64 hex digits (hashing is the
 * caller's: core does no I/O and has no synchronous hash of its own). The same name always gives the same
 * event_id, so a call recorded again (an exporter's retry, a response polled twice) is stored once.
 */
export function uuidv8FromSha256(hex: string): string {
  const version = `8${hex.slice(13, 16)}`;
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16) + hex.slice(17, 20);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${version}-${variant}-${hex.slice(20, 32)}`;
}
