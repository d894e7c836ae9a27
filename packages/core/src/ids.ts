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

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * UUID v7 (RFC 9562): 48-bit ms timestamp + random bits, so ids sort by time and make good
 * idempotency keys. `random` may supply the 10 random bytes (seeded demo data stays reproducible).
 */
export function uuidv7(ms: number = Date.now(), random?: Uint8Array): string {
  const b = new Uint8Array(16);
  let t = ms;
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  const r = random ?? randomBytes10();
  b.set(r.subarray(0, 10), 6);
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  let s = "";
  for (let i = 0; i < 16; i++) {
    s += HEX[b[i]!];
    if (i === 3 || i === 5 || i === 7 || i === 9) s += "-";
  }
  return s;
}
