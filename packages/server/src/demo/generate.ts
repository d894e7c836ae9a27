import { uuidv7 } from "@tollgate/core";
import { Rng, Zipf } from "./random.js";

/** A call record as a client would send it to POST /v1/events. */
export type DemoRecord = Record<string, unknown>;

interface Feature {
  name: string;
  share: number;
  provider: string;
  api: string;
  models: readonly string[];
  inputMedian: number;
  outputMedian: number;
  cacheShare: number;
}

const FEATURES: readonly Feature[] = [
  {
    name: "chat-assistant",
    share: 0.38,
    provider: "openai",
    api: "openai.chat",
    models: ["gpt-4o-mini", "gpt-4o"],
    inputMedian: 1800,
    outputMedian: 350,
    cacheShare: 0.4,
  },
  {
    name: "summarize",
    share: 0.2,
    provider: "anthropic",
    api: "anthropic.messages",
    models: ["claude-haiku-4-5"],
    inputMedian: 4000,
    outputMedian: 300,
    cacheShare: 0.1,
  },
  {
    name: "code-review",
    share: 0.12,
    provider: "anthropic",
    api: "anthropic.messages",
    models: ["claude-sonnet-4-5"],
    inputMedian: 12000,
    outputMedian: 900,
    cacheShare: 0.7,
  },
  {
    name: "search-embed",
    share: 0.22,
    provider: "openai",
    api: "openai.embeddings",
    models: ["text-embedding-3-small"],
    inputMedian: 600,
    outputMedian: 0,
    cacheShare: 0,
  },
  {
    name: "insights",
    share: 0.08,
    provider: "google",
    api: "google.generate_content",
    models: ["gemini-2.5-flash", "gemini-2.5-pro"],
    inputMedian: 6000,
    outputMedian: 700,
    cacheShare: 0.2,
  },
];

const DAY = 86_400_000;
const USERS = 500;
const CUSTOMERS = 80;

export interface DemoOptions {
  days: number;
  /** Calls per day before growth and weekday effects. */
  callsPerDay?: number;
  seed?: number;
  now?: number;
}

/**
 * Realistic demo traffic, ending today: Zipf-skewed users and customers, several features,
 * a prompt version with 2.6× longer `summarize` prompts (about 2.1× the cost per request) over the last third
 * of the days, support-agent runs with a long p99 tail,
 * and one retry-storm day. Seeded: the same options give the same events on the same day, so re-running is idempotent.
 */
export function* generateDemo(opts: DemoOptions): Generator<DemoRecord> {
  const now = opts.now ?? Date.now();
  // Whole days are generated the same way whenever it runs; calls later than now are just not emitted.
  for (const rec of generateDays(opts, now)) if ((rec.ts_start as number) <= now) yield rec;
}

function* generateDays(opts: DemoOptions, now: number): Generator<DemoRecord> {
  const rng = new Rng(opts.seed ?? 42);
  const end = Math.floor(now / DAY) * DAY;
  const start = end - (opts.days - 1) * DAY;
  const perDay = opts.callsPerDay ?? 1500;
  const users = new Zipf(USERS, 1.1);
  const customers = new Zipf(CUSTOMERS, 1.2);
  // The prompt regression runs over the last third of the days (today is the last), so a 90-day demo's
  // last 30 days hold its first sighting: `explain --from 30d` names the deploy.
  const regressionDay = end - Math.max(0, Math.floor(opts.days / 3) - 1) * DAY;
  const stormDay = end - Math.max(1, Math.floor(opts.days / 7)) * DAY;

  for (let day = start; day <= end; day += DAY) {
    const weekday = new Date(day).getUTCDay();
    const growth = 1 + (0.6 * (day - start)) / Math.max(DAY, end - start);
    const weekend = weekday === 0 || weekday === 6 ? 0.45 : 1;
    const calls = Math.round(perDay * growth * weekend * (0.9 + 0.2 * rng.next()));
    const dayEnd = day + DAY;
    for (let i = 0; i < calls; i++) {
      const ts = day + Math.floor(rng.next() * (dayEnd - day));
      const user = users.sample(rng);
      const ctx = {
        user_id: `user-${String(user + 1).padStart(4, "0")}`,
        customer_id: `cust-${String(((user * 7 + customers.sample(rng)) % CUSTOMERS) + 1).padStart(3, "0")}`,
        deployment: rng.next() < 0.93 ? "prod" : "staging",
      };
      const feature = pickFeature(rng);
      const promptVersion =
        feature.name === "summarize"
          ? ts >= regressionDay
            ? "summarize-v2"
            : "summarize-v1"
          : `${feature.name}-v1`;
      const inflate = promptVersion === "summarize-v2" ? 2.6 : 1;
      if (day === stormDay && feature.name === "chat-assistant" && rng.next() < 0.5) {
        yield* retryStorm(rng, ts, feature, ctx, promptVersion);
        continue;
      }
      yield call(rng, ts, feature, ctx, { prompt_version: promptVersion, inflate });
    }
    // Support-agent runs: most take a few steps, a few loop for a very long time (the p99 tail).
    const runs = Math.round((perDay / 40) * growth * weekend);
    for (let r = 0; r < runs; r++) {
      const ts = day + Math.floor(rng.next() * (dayEnd - day - 3_600_000));
      const user = users.sample(rng);
      const runId = uuidv7(ts, rng.bytes(10));
      const steps = Math.min(400, Math.max(1, Math.round(rng.logNormal(4, 1.1))));
      const ctx = {
        user_id: `user-${String(user + 1).padStart(4, "0")}`,
        customer_id: `cust-${String(((user * 7 + customers.sample(rng)) % CUSTOMERS) + 1).padStart(3, "0")}`,
        deployment: "prod",
        agent_run_id: runId,
        agent_type: "support-agent",
      };
      const agentFeature: Feature = {
        name: "support-agent",
        share: 0,
        provider: "openai",
        api: "openai.responses",
        models: ["gpt-5"],
        inputMedian: 3000,
        outputMedian: 250,
        cacheShare: 0.6,
      };
      for (let s = 0; s < steps; s++) {
        yield call(rng, ts + s * 4000, agentFeature, ctx, {
          prompt_version: "support-agent-v3",
          inflate: 1 + s * 0.15,
        });
      }
    }
  }
}

function pickFeature(rng: Rng): Feature {
  let u = rng.next();
  for (const f of FEATURES) {
    u -= f.share;
    if (u <= 0) return f;
  }
  return FEATURES[0]!;
}

function call(
  rng: Rng,
  ts: number,
  f: Feature,
  ctx: Record<string, string>,
  opts: {
    prompt_version: string;
    inflate: number;
    attempt?: number;
    request_id?: string;
    status?: string;
    http_status?: number;
  },
): DemoRecord {
  const model = rng.pick(f.models);
  const input = Math.max(1, Math.round(rng.logNormal(f.inputMedian * opts.inflate, 0.6)));
  const cached = f.provider === "openai" && input < 1024 ? 0 : Math.round(input * f.cacheShare * rng.next());
  const output = f.outputMedian ? Math.max(1, Math.round(rng.logNormal(f.outputMedian, 0.7))) : 0;
  const reasoning = model === "gpt-5" || model === "gemini-2.5-pro" ? Math.round(output * rng.next()) : 0;
  const latency = Math.round(200 + output * 12 * (0.5 + rng.next()) + input * 0.02);
  const failed = opts.status === "error";
  const record: DemoRecord = {
    event_id: uuidv7(ts, rng.bytes(10)),
    ts_start: ts,
    ts_end: ts + latency,
    ttft_ms: Math.round(latency * 0.2),
    kind: f.api === "openai.embeddings" ? "embedding" : "llm",
    provider: f.provider,
    api: f.api,
    model,
    stream: f.api === "openai.chat" && rng.next() < 0.6,
    status: opts.status ?? "ok",
    http_status: opts.http_status ?? 200,
    attempt: opts.attempt ?? 1,
    request_id: opts.request_id ?? null,
    input_uncached_tokens: failed ? 0 : input - cached,
    cache_read_tokens: failed ? 0 : cached,
    output_tokens: failed ? 0 : output + reasoning,
    reasoning_tokens: failed ? 0 : reasoning,
    feature: f.name,
    prompt_version: opts.prompt_version,
    tags: rng.next() < 0.1 ? ["experiment"] : [],
    data_mode: "demo",
    ...ctx,
  };
  if (failed) record.error_type = "rate_limit_error";
  return record;
}

/** A request that hit 429s and was retried up to 5 times: every attempt is its own record. */
function* retryStorm(
  rng: Rng,
  ts: number,
  f: Feature,
  ctx: Record<string, string>,
  promptVersion: string,
): Generator<DemoRecord> {
  const requestId = `req-${uuidv7(ts, rng.bytes(10))}`;
  const attempts = rng.int(2, 5);
  for (let a = 1; a <= attempts; a++) {
    const last = a === attempts;
    yield call(rng, ts + (2 ** a - 1) * 500, f, ctx, {
      prompt_version: promptVersion,
      inflate: 1,
      attempt: a,
      request_id: requestId,
      status: last ? "ok" : "error",
      http_status: last ? 200 : 429,
    });
  }
}
