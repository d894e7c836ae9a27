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
    // One native call over a Buffer view of the whole body: a flat string, no per-byte concatenation.
    this.#asBuffer ??= Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    return this.#asBuffer.toString("hex", from, to);
  }
  #asBuffer: Buffer | null = null;

  /** A string field: strict UTF-8, as proto3 requires. */
  string(end: number): string {
    const to = this.lengthEnd(end);
    const from = this.pos;
    this.pos = to;
    return this.#text(from, to);
  }

  /**
   * A string that repeats across messages (attribute keys): decoded once, then the same string again.
   * Decoding a key afresh per attribute cost twice: the bytes, and V8 looking the new string up to use it as
   * a property name.
   */
  key(end: number): string {
    const to = this.lengthEnd(end);
    const from = this.pos;
    this.pos = to;
    const len = to - from;
    if (len === 0) return "";
    const buf = this.buf;
    const slot = (len * 31 + buf[from]! * 7 + buf[to - 1]! * 3 + buf[from + (len >> 1)]!) & (KEY_SLOTS - 1);
    const hit = keys[slot];
    if (hit && hit.bytes.length === len && sameBytes(hit.bytes, buf, from)) return hit.text;
    const text = this.#text(from, to);
    keys[slot] = { bytes: buf.slice(from, to), text };
    return text;
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

  #text(from: number, to: number): string {
    // Short ASCII (ids, model names) is most strings: read without a decoder call.
    if (to - from <= 32) {
      let ascii = "";
      for (let i = from; i < to; i++) {
        const c = this.buf[i]!;
        if (c > 0x7f) return this.#utf8(from, to);
        ascii += String.fromCharCode(c);
      }
      return ascii;
    }
    return this.#utf8(from, to);
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

/** Recently decoded keys by a hash of their bytes (shared by all decodes: keys repeat across exports). */
const KEY_SLOTS = 1024;
const keys: ({ bytes: Uint8Array; text: string } | undefined)[] = new Array(KEY_SLOTS);

function sameBytes(a: Uint8Array, buf: Uint8Array, at: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== buf[at + i]) return false;
  return true;
}
