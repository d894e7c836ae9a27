/**
 * A reader of the protobuf wire format over one buffer: varints, fixed-width numbers and length-delimited
 * fields, each bounded by the end of the message that holds it. Errors say what broke and at which byte.
 */
export class WireError extends Error {}

export const VARINT = 0;
export const FIXED64 = 1;
export const LEN = 2;
export const FIXED32 = 5;

const utf8 = new TextDecoder("utf-8", { fatal: true });

export class WireReader {
  /** The next byte to read. */
  pos = 0;
  readonly #view: DataView;

  constructor(readonly buf: Uint8Array) {
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** A varint as a number: tags, lengths, counts (a value past 2^53 is invalid in those and fails later). */
  varint(end: number): number {
    this.#readVarint(end);
    return this.#hi === 0 ? this.#lo >>> 0 : (this.#hi >>> 0) * 2 ** 32 + (this.#lo >>> 0);
  }

  /** An int32 or enum varint: its low 32 bits, signed (a negative one is sent in 10 bytes). */
  int32(end: number): number {
    this.#readVarint(end);
    return this.#lo | 0;
  }

  /** An int64 varint (two's complement): a number when it fits 2^53, a bigint otherwise. */
  int64(end: number): number | bigint {
    this.#readVarint(end);
    const lo = this.#lo;
    const hi = this.#hi;
    if (hi === 0) return lo >>> 0;
    const n = BigInt.asIntN(64, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }

  #lo = 0;
  #hi = 0;
  /** Reads a varint's 64 bits into #lo and #hi (no allocation). */
  #readVarint(end: number): void {
    let lo = 0;
    let hi = 0;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= end) throw this.#error("truncated varint");
      if (shift > 63) throw this.#error("varint longer than 10 bytes");
      const b = this.buf[this.pos++]!;
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi = (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      if (!(b & 0x80)) break;
    }
    this.#lo = lo;
    this.#hi = hi;
  }

  /** fixed64 as an unsigned bigint (OTLP's nanosecond timestamps). */
  fixed64(end: number): bigint {
    const at = this.#take(8, end);
    const lo = this.#view.getUint32(at, true);
    const hi = this.#view.getUint32(at + 4, true);
    return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  }

  double(end: number): number {
    return this.#view.getFloat64(this.#take(8, end), true);
  }

  /** The end of a length-delimited field that starts here (its length is read). */
  lengthEnd(end: number): number {
    const len = this.varint(end);
    if (len > end - this.pos) throw this.#error("length runs past the end of its message");
    return this.pos + len;
  }

  bytes(end: number): Uint8Array {
    const to = this.lengthEnd(end);
    const out = this.buf.subarray(this.pos, to);
    this.pos = to;
    return out;
  }

  /** A bytes field as lowercase hex (OTLP's trace and span ids). */
  hex(end: number): string {
    const to = this.lengthEnd(end);
    const from = this.pos;
    this.pos = to;
    // One native call: a flat string, no per-byte concatenation.
    return this.#buffer().toString("hex", from, to);
  }

  /** A Buffer view of the whole body, made on first use, for Buffer's one-call string decoders. */
  #buffer(): Buffer {
    this.#asBuffer ??= Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    return this.#asBuffer;
  }
  #asBuffer: Buffer | null = null;

  /** A string field: strict UTF-8, as proto3 requires. */
  string(end: number): string {
    const to = this.lengthEnd(end);
    const from = this.pos;
    this.pos = to;
    return to - from <= SHORT ? this.#short(from, to) : this.#utf8(from, to);
  }

  /** Skips a field of `wireType` whose tag was just read. */
  skip(wireType: number, end: number): void {
    if (wireType === VARINT) this.#readVarint(end);
    else if (wireType === FIXED64) this.#take(8, end);
    else if (wireType === LEN) this.pos = this.lengthEnd(end);
    else if (wireType === FIXED32) this.#take(4, end);
    else throw this.#error(`unsupported wire type ${wireType}`);
  }

  #take(n: number, end: number): number {
    if (end - this.pos < n) throw this.#error(`truncated ${n}-byte field`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /**
   * A short string: most are ASCII and repeat across spans (attribute keys, operation, provider and model
   * names, environments), so the last one seen with the same hash of its bytes is given again when its
   * characters match. Building a new string per value was a quarter of what a span's decode allocated, and
   * a repeated string keeps the hash V8 computed for it (property and Map lookups downstream).
   */
  #short(from: number, to: number): string {
    if (from === to) return "";
    const buf = this.buf;
    let h = to - from;
    for (let i = from; i < to; i++) {
      const c = buf[i]!;
      if (c > 0x7f) return this.#utf8(from, to);
      h = (Math.imul(h, 31) + c) | 0;
    }
    const slot = h & (SHORT_SLOTS - 1);
    const hit = shortStrings[slot];
    if (hit !== undefined && sameAscii(hit, buf, from, to)) return hit;
    const text = this.#buffer().toString("latin1", from, to);
    shortStrings[slot] = text;
    return text;
  }

  #utf8(from: number, to: number): string {
    try {
      return utf8.decode(this.buf.subarray(from, to));
    } catch {
      throw this.#error("a string is not valid UTF-8");
    }
  }

  #error(what: string): WireError {
    return new WireError(`${what} at byte ${this.pos}`);
  }
}

/** Strings up to this many bytes go through the cache of recent short strings. */
const SHORT = 32;
/** Recently decoded short ASCII strings by a hash of their bytes (shared by all decodes: they repeat across exports). */
const SHORT_SLOTS = 4096;
const shortStrings: (string | undefined)[] = new Array(SHORT_SLOTS);

function sameAscii(text: string, buf: Uint8Array, from: number, to: number): boolean {
  if (text.length !== to - from) return false;
  for (let i = from; i < to; i++) if (text.charCodeAt(i - from) !== buf[i]) return false;
  return true;
}
