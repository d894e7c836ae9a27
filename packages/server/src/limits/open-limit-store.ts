import { MemoryLimitStore } from "./memory-store.js";
import type { LimitStore } from "./types.js";

/** In-memory limits for one process, or Redis (TOLLGATE_REDIS_URL) for many gateways sharing caps. */
export async function openLimitStore(redisUrl: string | null): Promise<LimitStore> {
  const url = redisUrl ?? process.env.TOLLGATE_REDIS_URL ?? null;
  if (!url) return new MemoryLimitStore();
  const { RedisLimitStore } = await import("./redis-store.js");
  return RedisLimitStore.connect(url);
}
