import { describe, expect, it } from "vitest";
import { uuidv7, uuidv8FromSha256 } from "../src/ids.js";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("uuidv7", () => {
  it("lays out the timestamp, version, variant and the given random bytes as RFC 9562 says", () => {
    const random = Uint8Array.from([0xff, 0x01, 0xff, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    // 0x018bcfe56800 ms; version 7 over 0xff's low nibble; variant 10 over 0xff's low 6 bits.
    expect(uuidv7(1_700_000_000_000, random)).toBe("018bcfe5-6800-7f01-bf23-456789abcdef");
    expect(uuidv7(0, new Uint8Array(10))).toBe("00000000-0000-7000-8000-000000000000");
    expect(uuidv7(2 ** 48 - 1, new Uint8Array(10).fill(0xff))).toBe("ffffffff-ffff-7fff-bfff-ffffffffffff");
  });

  it("gives well-formed, distinct ids that sort by time, with or without given bytes", () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => uuidv7(1_700_000_000_000 + Math.floor(i / 10)));
    for (const id of ids) expect(id).toMatch(UUID_V7);
    expect(new Set(ids).size).toBe(ids.length);
    const byTime = ids.filter((_, i) => i % 10 === 0);
    expect([...byTime].sort()).toEqual(byTime);
  });

  it("depends only on its arguments: fewer than 10 given bytes leave zeros, whatever the id before", () => {
    uuidv7(2 ** 47, new Uint8Array(10).fill(0xaa));
    expect(uuidv7(1, Uint8Array.of(0x12, 0x34))).toBe("00000000-0001-7234-8000-000000000000");
    uuidv7();
    expect(uuidv7(1, Uint8Array.of(0x12, 0x34))).toBe("00000000-0001-7234-8000-000000000000");
  });
});

describe("uuidv8FromSha256", () => {
  it("lays out a digest's first 122 bits with version 8 and variant 10", () => {
    const sha = "0123456789abcdef".repeat(4); // a digest's 64 hex digits
    expect(uuidv8FromSha256(sha)).toBe("01234567-89ab-8def-8123-456789abcdef");
    expect(uuidv8FromSha256("f".repeat(64))).toBe("ffffffff-ffff-8fff-bfff-ffffffffffff");
  });
});
