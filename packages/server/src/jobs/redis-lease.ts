import { performance } from "node:perf_hooks";
import type { Redis } from "ioredis";
import { redisClient } from "../redis-connect.js";
import { type JobLease, type LeaseListener, newHolderId } from "./lease.js";

/** The braces are a Redis Cluster hash tag: the lease and its run times live in one slot. */
export const DEFAULT_LEASE_KEY = "tollgate:lease:{jobs}";
export const DEFAULT_LEASE_TTL_MS = 15_000;

// SET NX PX takes a free lease. Our own key (left by a renewal whose reply timed out) is taken back with
// PEXPIRE. Someone else's answers its holder and remaining ttl, so a standby retries as it expires.
const ACQUIRE = `
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return {1} end
return {0, redis.call('pttl', KEYS[1]), holder or ''}`;
const RENEW = `
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0`;
const RECORD_RUN = `
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('hset', KEYS[2], ARGV[2], ARGV[3]) return 1 end
return 0`;

export interface RedisLeaseOptions {
  /** How long the lease outlives its holder's last renewal (default 15 s); renewed every ttl/3. */
  ttlMs?: number;
  key?: string;
  log?: (msg: string) => void;
}

/** TOLLGATE_JOB_LEASE_TTL_MS, default 15 s. */
export function leaseTtlFromEnv(env = process.env): number {
  const v = env.TOLLGATE_JOB_LEASE_TTL_MS;
  if (v === undefined || v === "") return DEFAULT_LEASE_TTL_MS;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 300)
    throw new Error(
      `TOLLGATE_JOB_LEASE_TTL_MS must be a whole number of at least 300, got ${JSON.stringify(v)}`,
    );
  return n;
}

/**
 * The job lease shared by every worker on one Redis: a key holding the holder's id with a ttl.
 *
 * - acquire: `SET key id NX PX ttl` (a standby retries every ttl/3, or as soon as the key expires);
 * - renew: every ttl/3, PEXPIRE only if the key still holds our id (Lua compare-and-pexpire);
 * - release (shutdown): DEL only if the key still holds our id (compare-and-del): a standby takes over
 *   on its next try.
 *
 * Fail safe: the holder stops holding (jobs stop) as soon as a renewal fails — Redis unreachable, a reply
 * timed out, or the key no longer ours — and locally no later than ttl after it sent the last renewal that
 * succeeded (so before Redis can let the key expire and hand it to another worker), then keeps trying to
 * acquire. A holder killed with -9 never releases: its key expires after the ttl and a standby takes over.
 */
export class RedisJobLease implements JobLease {
  readonly backend = "redis";
  readonly holderId = newHolderId();
  readonly ttlMs: number;
  readonly key: string;
  readonly #runsKey: string;
  readonly #renewEveryMs: number;
  readonly #redis: Redis;
  readonly #log: (msg: string) => void;
  #held = false;
  /** performance.now() after which we no longer hold the lease without a renewal. */
  #validUntil = 0;
  /** The current holder as last seen (ours when held). */
  #holder: string | null = null;
  #listener: LeaseListener | null = null;
  #tickTimer: NodeJS.Timeout | null = null;
  #expiryTimer: NodeJS.Timeout | null = null;
  #inflight: Promise<void> | null = null;
  #started = false;
  #stopped = false;
  #lastError: string | null = null;

  constructor(url: string, opts: RedisLeaseOptions = {}) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    this.key = opts.key ?? DEFAULT_LEASE_KEY;
    this.#runsKey = `${this.key}:runs`;
    this.#renewEveryMs = Math.max(1, Math.floor(this.ttlMs / 3));
    this.#log = opts.log ?? (() => {});
    this.#redis = redisClient(url, {
      // Fail fast and never resend: a lease answer that comes late is treated as lost.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: Math.max(50, Math.min(1000, this.#renewEveryMs)),
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(times * 100, this.#renewEveryMs, 2000),
    });
    this.#redis.on("error", () => {}); // reported through the lease state; avoid an unhandled 'error'
    // Back from an outage: try at once instead of at the next retry.
    this.#redis.on("ready", () => {
      if (!this.#held) this.#kick();
    });
  }

  held(): boolean {
    return this.#held && performance.now() < this.#validUntil;
  }

  holder(): string | null {
    return this.#held ? this.holderId : this.#holder;
  }

  start(onChange: LeaseListener): void {
    if (this.#started) throw new Error("lease already started");
    this.#started = true;
    this.#listener = onChange;
    this.#redis.connect().catch(() => {}); // a failed connect is retried by ioredis; ticks report it
    this.#kick();
  }

  async release(): Promise<void> {
    this.#stopped = true;
    if (this.#tickTimer) clearTimeout(this.#tickTimer);
    await this.#inflight;
    try {
      await this.#redis.eval(RELEASE, 1, this.key, this.holderId);
    } catch {
      // Redis gone: the key expires on its own after the ttl.
    }
    this.#lose(null);
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  async lastRun(job: string): Promise<number | null> {
    const v = await this.#redis.hget(this.#runsKey, job);
    return v === null ? null : Number(v);
  }

  async recordRun(job: string, at: number): Promise<boolean> {
    if (!this.held()) return false;
    try {
      const ok = await this.#redis.eval(RECORD_RUN, 2, this.key, this.#runsKey, this.holderId, job, at);
      if (ok === 1) return true;
      this.#lose("the lease is no longer ours");
    } catch (e) {
      this.#lose(`Redis: ${redisError(e)}`);
    }
    return false;
  }

  #kick(): void {
    if (this.#stopped || !this.#started || this.#inflight) return;
    if (this.#tickTimer) clearTimeout(this.#tickTimer);
    this.#tickTimer = null;
    this.#inflight = this.#tick().finally(() => {
      this.#inflight = null;
    });
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    if (this.#tickTimer) clearTimeout(this.#tickTimer);
    this.#tickTimer = setTimeout(() => this.#kick(), ms);
    this.#tickTimer.unref();
  }

  async #tick(): Promise<void> {
    const sent = performance.now();
    const ttl = String(this.ttlMs);
    let next = this.#renewEveryMs;
    try {
      if (this.#held) {
        const ok = await this.#redis.eval(RENEW, 1, this.key, this.holderId, ttl);
        if (this.#stopped) return;
        if (ok === 1) this.#gain(sent);
        else this.#lose("the lease is no longer ours");
      } else {
        const r = (await this.#redis.eval(ACQUIRE, 1, this.key, this.holderId, ttl)) as [
          number,
          number?,
          string?,
        ];
        if (this.#stopped) return;
        if (r[0] === 1) this.#gain(sent);
        else {
          const pttl = r[1] ?? -1;
          if (r[2] && r[2] !== this.#holder) this.#log(`job lease held by ${r[2]}: standing by`);
          this.#holder = r[2] || null;
          if (pttl >= 0) next = Math.min(next, pttl + 5);
        }
      }
      this.#lastError = null;
    } catch (e) {
      if (this.#stopped) return;
      const msg = redisError(e);
      if (this.#held) this.#lose(`Redis: ${msg}`);
      else if (msg !== this.#lastError) this.#log(`job lease: Redis unavailable (${msg}); retrying`);
      this.#lastError = msg;
    }
    this.#schedule(next);
  }

  #gain(sent: number): void {
    // Redis received the command after we sent it, so its copy of the key outlives this deadline (the
    // 1% margin covers the two clocks running at slightly different rates).
    const validUntil = sent + this.ttlMs - Math.ceil(this.ttlMs / 100);
    const now = performance.now();
    if (validUntil <= now) {
      this.#lose("renewed too late");
      return;
    }
    this.#validUntil = validUntil;
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = setTimeout(() => this.#lose("not renewed in time"), validUntil - now);
    this.#expiryTimer.unref();
    if (!this.#held) {
      this.#held = true;
      this.#holder = this.holderId;
      this.#log(`job lease acquired by ${this.holderId} (ttl ${this.ttlMs} ms): running scheduled jobs`);
      this.#listener?.(true);
    }
  }

  /** reason null: released on purpose. */
  #lose(reason: string | null): void {
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = null;
    if (!this.#held) return;
    this.#held = false;
    this.#holder = null;
    this.#validUntil = 0;
    this.#log(
      reason === null
        ? "job lease released"
        : `job lease lost (${reason}): scheduled jobs paused until it is acquired again`,
    );
    this.#listener?.(false);
    if (reason !== null) this.#schedule(0);
  }
}

const redisError = (e: unknown): string => {
  const msg = (e as Error).message;
  return /isn't writeable|connection is closed/i.test(msg) ? "not connected" : msg;
};
