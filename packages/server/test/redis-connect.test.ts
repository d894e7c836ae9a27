import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { BackendUnreachableError } from "../src/backend-error.js";
import { connectRedis } from "../src/redis-connect.js";

describe("connectRedis", () => {
  it("a Redis that cannot be reached is named with why, however its address is written", async () => {
    // ioredis takes a bare host:port (and credentials) without a scheme as it takes a redis:// URL
    for (const [url, where] of [
      ["redis://ops:s3cret@127.0.0.1:1", "127.0.0.1:1"],
      ["127.0.0.1:1", "127.0.0.1:1"],
      ["localhost:1", "localhost:1"],
      ["ops:s3cret@127.0.0.1:1", "127.0.0.1:1"],
    ] as const) {
      const redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      const e = await connectRedis(redis, url).catch((x: unknown) => x);
      expect(e, url).toBeInstanceOf(BackendUnreachableError); // was a TypeError (Invalid URL) for 127.0.0.1:1
      expect((e as Error).message).toContain(`cannot reach Redis at ${where} `);
      expect((e as Error).message).toContain("ECONNREFUSED");
      expect((e as Error).message).not.toContain("s3cret");
    }
  });
});
