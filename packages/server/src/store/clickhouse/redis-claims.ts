import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { connectRedis, redisClient } from "../../redis-connect.js";
import { CLAIM_TTL_MS, type IdClaims } from "./claims.js";

/** All keys or none: returns the ones held by someone else, else sets them all with a time to live. */
const CLAIM = `
local busy = {}
for i, k in ipairs(KEYS) do if redis.call('EXISTS', k) == 1 then busy[#busy + 1] = k end end
if #busy > 0 then return busy end
for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1], 'PX', ARGV[2]) end
return busy`;
/** Deletes only the keys this holder set (a claim that expired may have been taken by another). */
const RELEASE = `
for i, k in ipairs(KEYS) do if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end end
return 0`;

/**
 * Claims shared by every replica, in Redis. A holder that dies mid-insert leaves its claims to expire;
 * until then a retry of those ids is told to come back later, never that they are stored.
 */
export class RedisClaims implements IdClaims {
  readonly #holder = randomUUID();
  private constructor(private readonly redis: Redis) {
    redis.defineCommand("tgClaim", { lua: CLAIM });
    redis.defineCommand("tgReleaseClaims", { lua: RELEASE });
  }

  static async connect(url: string): Promise<RedisClaims> {
    const redis = redisClient(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true });
    await connectRedis(redis, url);
    return new RedisClaims(redis);
  }

  async claim(keys: readonly string[]): Promise<string[]> {
    if (!keys.length) return [];
    const call = (this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<string[]>>)
      .tgClaim!;
    const busy = await call.call(this.redis, keys.length, ...keys.map(redisKey), this.#holder, CLAIM_TTL_MS);
    const back = new Map(keys.map((k) => [redisKey(k), k]));
    return busy.map((k) => back.get(k) ?? k);
  }

  async release(keys: readonly string[]): Promise<void> {
    if (!keys.length) return;
    const call = (this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<number>>)
      .tgReleaseClaims!;
    await call.call(this.redis, keys.length, ...keys.map(redisKey), this.#holder);
  }

  /** Left to lapse: their time to live runs from the claim. */
  async abandon(): Promise<void> {}

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

/**
 * `tg:{<workspace>}:claim:<event id>`: the braces keep one workspace's claims in one Redis Cluster slot,
 * so a batch's claims (grouped by workspace by the caller) are one script call.
 */
function redisKey(recordKey: string): string {
  const [ws, id] = recordKey.split("\u0000");
  return `tg:{${ws}}:claim:${id}`;
}
