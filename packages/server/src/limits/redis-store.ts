import { type Ceilings, type KillReason, minuteOf, RATE_WINDOW_MS, type RunUsage } from "@tollgate/core";
import { Redis } from "ioredis";
import { levelWindow } from "./memory-store.js";
import { ADMIT, SETTLE } from "./redis-scripts.js";
import type {
  AdmitRequest,
  AdmitResult,
  BucketRef,
  BucketStatus,
  LimitStore,
  RunStatus,
  SettleRequest,
  SettleResult,
} from "./types.js";

type ScriptCall = (...args: (string | number)[]) => Promise<string[]>;

/** Collects the keys of one script call; the spec refers to them by 1-based index. */
class Keys {
  readonly list: string[] = [];
  constructor(private readonly prefix: string) {}
  add(k: string): number {
    return this.list.push(this.prefix + k);
  }
}

const strCeilings = (c: Ceilings) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, String(v)]));

/**
 * Limits shared by every gateway replica. Keys are `tg:{<workspace>}:…`: the braces are a Redis Cluster
 * hash tag, so all keys one call touches live in one slot and a script may use them together.
 */
export class RedisLimitStore implements LimitStore {
  readonly name = "redis";
  readonly volatile = false;

  private constructor(private readonly redis: Redis) {
    redis.defineCommand("tgAdmit", { lua: ADMIT });
    redis.defineCommand("tgSettle", { lua: SETTLE });
  }

  static async connect(url: string): Promise<RedisLimitStore> {
    // No offline queue and one retry: when Redis is down a call fails fast and the budget's fail mode decides.
    const redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: 1000,
      connectTimeout: 2000,
    });
    redis.on("error", () => {}); // reported per call through the fail mode; avoid an unhandled 'error'
    await redis.connect();
    return new RedisLimitStore(redis);
  }

  #script(name: "tgAdmit" | "tgSettle"): ScriptCall {
    return (this.redis as unknown as Record<string, ScriptCall>)[name]!.bind(this.redis);
  }

  async admit(req: AdmitRequest): Promise<AdmitResult> {
    const keys = new Keys(`tg:{${req.workspace}}:`);
    const minute = minuteOf(req.now);
    const spec = {
      run: req.run
        ? {
            k: keys.add(req.run.key),
            ceil: strCeilings(req.run.ceilings),
            depth: req.run.depth,
            retry: req.run.retry,
          }
        : null,
      rates: req.rates.map((r) => ({
        p: keys.add(`${r.key}:${minute - 1}`),
        c: keys.add(`${r.key}:${minute}`),
        limit: r.limit,
        cost: r.cost,
      })),
      buckets: req.buckets.map((b) => ({
        m: keys.add(`${b.key}:m`),
        z: keys.add(`${b.key}:z`),
        slots: b.slots.map((s) => keys.add(`${b.key}:s:${s}`)),
        limit: b.limit.toString(),
        amount: b.amount.toString(),
        enforce: b.enforce,
        trpm: b.throttleRpm,
        tp: keys.add(`${b.key}:throttle:${minute - 1}`),
        tc: keys.add(`${b.key}:throttle:${minute}`),
        ttl: b.ttlMs,
      })),
    };
    const permille = Math.floor(((req.now % RATE_WINDOW_MS) * 1000) / RATE_WINDOW_MS);
    const r = await this.#script("tgAdmit")(
      keys.list.length,
      ...keys.list,
      JSON.stringify(spec),
      req.now,
      req.id,
      req.expiresAt,
      permille,
    );
    switch (r[0]) {
      case "ok":
        return { ok: true };
      case "run":
        return {
          ok: false,
          refusal: { kind: "run", kill: JSON.parse(r[1]!) as KillReason, newlyKilled: r[2] === "1" },
        };
      case "rate":
        return { ok: false, refusal: { kind: "rate", index: Number(r[1]), count: Number(r[2]) } };
      case "throttle":
        return {
          ok: false,
          refusal: { kind: "throttle", index: Number(r[1]), count: Number(r[2]), spend: BigInt(r[3]!) },
        };
      default:
        return {
          ok: false,
          refusal: { kind: "budget", index: Number(r[1]), spend: BigInt(r[2]!), reserved: BigInt(r[3]!) },
        };
    }
  }

  settle(req: SettleRequest): Promise<SettleResult> {
    return this.#settle(req.id, req);
  }

  charge(req: Omit<SettleRequest, "id">): Promise<SettleResult> {
    return this.#settle("", req);
  }

  async #settle(id: string, req: Omit<SettleRequest, "id">): Promise<SettleResult> {
    const keys = new Keys(`tg:{${req.workspace}}:`);
    const minute = minuteOf(req.now);
    const spec = {
      buckets: req.buckets.map((b) => {
        const slots = b.slots.map((s) => keys.add(`${b.key}:s:${s}`));
        return {
          m: keys.add(`${b.key}:m`),
          z: keys.add(`${b.key}:z`),
          slots,
          cur: slots[slots.length - 1],
          reserved: b.reserved.toString(),
          actual: b.actual.toString(),
          steps: b.steps.map(String),
          win: levelWindow(b.slots),
          ttl: b.ttlMs,
        };
      }),
      rates: req.tokenRates.map((t) => ({ c: keys.add(`${t.key}:${minute}`), tokens: t.tokens })),
      run: req.run
        ? {
            k: keys.add(req.run.key),
            ceil: strCeilings(req.run.ceilings),
            cost: req.run.cost.toString(),
            tokens: req.run.tokens,
            tools: req.run.toolCalls,
          }
        : null,
    };
    const r = await this.#script("tgSettle")(
      keys.list.length,
      ...keys.list,
      JSON.stringify(spec),
      req.now,
      id,
    );
    const changes = [];
    for (let i = 1; i + 3 < r.length; i += 4)
      changes.push({
        index: Number(r[i]),
        from: Number(r[i + 1]),
        to: Number(r[i + 2]),
        spend: BigInt(r[i + 3]!),
      });
    return { changes, killed: r[0] ? (JSON.parse(r[0]) as KillReason) : null };
  }

  async buckets(workspace: string, refs: BucketRef[], now: number): Promise<BucketStatus[]> {
    const p = `tg:{${workspace}}:`;
    const pipe = this.redis.pipeline();
    for (const r of refs) {
      pipe.mget(...r.slots.map((s) => `${p}${r.key}:s:${s}`));
      pipe.zrangebyscore(`${p}${r.key}:z`, `(${now}`, "+inf");
    }
    const res = (await pipe.exec()) ?? [];
    return refs.map((_, i) => {
      const spend = ((res[2 * i]?.[1] as (string | null)[]) ?? []).reduce((a, v) => a + BigInt(v ?? 0), 0n);
      const reserved = ((res[2 * i + 1]?.[1] as string[]) ?? []).reduce(
        (a, m) => a + BigInt(m.slice(m.lastIndexOf(":") + 1)),
        0n,
      );
      return { spend, reserved };
    });
  }

  async run(workspace: string, key: string): Promise<RunStatus | null> {
    const h = await this.redis.hgetall(`tg:{${workspace}}:${key}`);
    if (!h.started && !h.killed) return null;
    const usage: RunUsage = {
      cost_nanousd: BigInt(h.cost ?? 0),
      total_tokens: Number(h.tokens ?? 0),
      llm_calls: Number(h.llm ?? 0),
      tool_calls: Number(h.tools ?? 0),
      retries: Number(h.retries ?? 0),
      span_depth: Number(h.depth ?? 0),
      started_at: Number(h.started ?? 0),
    };
    return { usage, killed: h.killed ? (JSON.parse(h.killed) as KillReason) : null };
  }

  async kill(workspace: string, key: string, reason: KillReason): Promise<void> {
    const k = `tg:{${workspace}}:${key}`;
    await this.redis
      .multi()
      .hset(k, "killed", JSON.stringify(reason))
      .hsetnx(k, "started", reason.at)
      .pexpire(k, 604_800_000)
      .exec();
  }

  async unkill(workspace: string, key: string, now: number): Promise<boolean> {
    const k = `tg:{${workspace}}:${key}`;
    const res = await this.redis
      .multi()
      .hexists(k, "killed")
      .del(k)
      .hset(k, "started", now)
      .pexpire(k, 604_800_000)
      .exec();
    return res?.[0]?.[1] === 1;
  }

  seedBucket(): void {}
  seedRun(): void {}

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
