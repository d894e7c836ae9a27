import { Redis, type RedisOptions } from "ioredis";
import { BackendUnreachableError, BackendUrlError } from "./backend-error.js";

/**
 * A client of `url` not yet connected (connectRedis), or a BackendUrlError when ioredis cannot read `url`
 * as an address (`redis://[bad`): its TypeError and stack stopped the command. The value is not repeated:
 * it may hold a password.
 */
export function redisClient(url: string, options: RedisOptions): Redis {
  try {
    return new Redis(url, { ...options, lazyConnect: true });
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    throw new BackendUrlError(
      "--redis / TOLLGATE_REDIS_URL must be a Redis address, redis://[user:password@]host:port or host:port",
    );
  }
}

/**
 * Connects a lazyConnect client. Its errors go to callers per command, never unhandled; the first one says
 * why a connect failed, which ioredis's own rejection ("Connection is closed.") does not.
 */
export async function connectRedis(redis: Redis, url: string): Promise<void> {
  let why: Error | null = null;
  redis.on("error", (e: Error) => {
    why ??= e;
  });
  try {
    await redis.connect();
  } catch (e) {
    redis.disconnect();
    throw new BackendUnreachableError(
      `cannot reach Redis at ${whereOf(url)} (--redis / TOLLGATE_REDIS_URL): ${(why ?? (e as Error)).message}`,
    );
  }
}

/**
 * Where a Redis URL points, without its credentials. ioredis takes one without a scheme too (host:port,
 * a socket's path), which URL alone does not parse.
 */
function whereOf(url: string): string {
  const u = new URL(url.includes("://") ? url : `redis://${url}`);
  return u.host || u.pathname;
}
