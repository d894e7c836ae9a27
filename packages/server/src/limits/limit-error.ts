import {
  type Budget,
  eachFields,
  formatUsd,
  type HeldCall,
  type HeldCeiling,
  heldRequest,
  type KillReason,
  type RateLimitSpec,
  type RunHold,
  runHeldMessage,
} from "@tollgate/core";

/**
 * A call refused by a limit (DESIGN.md "Errors"): 429 with the code, what was hit, its limit, spend,
 * window and reset time, and Retry-After. The gateway wraps it in the provider's error shape.
 */
export class LimitError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
    readonly retryAfterS: number | null,
    readonly details: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** Seconds until the sliding minute has moved on (a rate refusal's Retry-After). */
const secondsLeftInMinute = (now: number) => 60 - Math.floor((now % 60_000) / 1000);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const secondsUntil = (ms: number | null, now: number) =>
  ms === null ? null : Math.max(1, Math.ceil((ms - now) / 1000));

/** Retry-After of a budget refusal that only calls in flight cause: their holds go as they end. */
const IN_FLIGHT_RETRY_S = 1;

/** `reserveLess`: how this call could reserve less (core's reserveLessHint), told when a smaller call would fit. */
export function budgetExceeded(
  b: Budget,
  bucket: string[],
  limit: bigint,
  spend: bigint,
  reserved: bigint,
  requested: bigint,
  resetAt: number | null,
  now: number,
  reserveLess: string,
): LimitError {
  const where = bucket.length ? ` for ${bucketText(b, bucket)}` : "";
  // Only the holds of calls in flight stand in the way: they end (settled to their cost, mostly less than
  // their worst case) within seconds, not at the window's reset. Told so, the SDKs retry it.
  const inFlightOnly = reserved > 0n && spend + requested <= limit;
  // A smaller worst case helps only while the bucket has room left; spent up, nothing but the reset does.
  const smallerCallFits = spend + reserved < limit;
  return new LimitError(
    429,
    "rate_limit_error",
    "budget_exceeded",
    `budget ${b.id}${where} would be exceeded: $${formatUsd(spend)} spent + $${formatUsd(reserved)} in flight + ` +
      `$${formatUsd(requested)} worst case of this call > limit $${formatUsd(limit)} per ${b.spec.window}` +
      (resetAt === null ? " (lifetime budget: raise the limit to continue)" : `; resets ${iso(resetAt)}`) +
      (inFlightOnly ? ". Retry once calls in flight end" : "") +
      (smallerCallFits ? `. ${reserveLess}` : "."),
    inFlightOnly ? IN_FLIGHT_RETRY_S : secondsUntil(resetAt, now),
    {
      budget: {
        id: b.id,
        scope: b.scope,
        bucket,
        window: b.spec.window,
        timezone: b.spec.timezone,
        limit_usd: formatUsd(limit),
        spend_usd: formatUsd(spend),
        reserved_usd: formatUsd(reserved),
        requested_usd: formatUsd(requested),
        reset_at: iso(resetAt),
      },
    },
  );
}

/**
 * A bucket as its "*" fields and the call's values: `user_id "u-42"`. A call without the field counts in the
 * bucket of calls without one (so leaving it out never escapes a cap), which a bare `""` did not say.
 */
function bucketText(b: Budget, bucket: string[]): string {
  return eachFields(b.scope)
    .map((f, i) =>
      bucket[i] ? `${f} ${JSON.stringify(bucket[i])}` : `${f} (none: calls without one share this bucket)`,
    )
    .join(", ");
}

export function budgetThrottled(
  b: Budget,
  bucket: string[],
  limit: bigint,
  spend: bigint,
  count: number,
  now: number,
): LimitError {
  const resetS = secondsLeftInMinute(now);
  return new LimitError(
    429,
    "rate_limit_error",
    "rate_limited",
    `budget ${b.id} is exceeded ($${formatUsd(spend)} of $${formatUsd(limit)} per ${b.spec.window}) and throttled to ${b.spec.throttle_rpm} requests/min`,
    resetS,
    {
      budget: {
        id: b.id,
        scope: b.scope,
        bucket,
        window: b.spec.window,
        limit_usd: formatUsd(limit),
        spend_usd: formatUsd(spend),
      },
      rate_limit: { id: `${b.id}:throttle`, limit: b.spec.throttle_rpm, count, window: "1m" },
    },
  );
}

/** A refused rate counter: `cost` is what the call would have added (1 request, or the tokens it holds). */
export function rateLimited(
  rate: { spec: RateLimitSpec; metric: "requests" | "tokens"; limit: number; cost: number },
  count: number,
  now: number,
  clearsInMs: number,
): LimitError {
  const { spec: r, metric, limit } = rate;
  const resetS = Math.max(1, Math.ceil(clearsInMs / 1000));
  const holds = metric === "tokens" && rate.cost > 0 ? `, this call holds ${rate.cost}` : "";
  return new LimitError(
    429,
    "rate_limit_error",
    "rate_limited",
    `rate limit ${r.id}: ${count} ${metric === "tokens" ? "tokens used or held" : metric} in the last minute, limit ${limit} ${metric}/min${holds}; retry in ${resetS} s`,
    resetS,
    {
      rate_limit: {
        id: r.id,
        scope: r.scope,
        metric,
        limit,
        count,
        ...(metric === "tokens" ? { held: rate.cost } : {}),
        window: "1m",
        reset_at: iso(now + resetS * 1000),
      },
    },
  );
}

export function runKilled(runId: string, agentType: string | null, kill: KillReason): LimitError {
  const what =
    kill.ceiling === "manual"
      ? `was killed manually${kill.by ? ` by ${kill.by}` : ""}`
      : `crossed its ${kill.ceiling} ceiling (${kill.value} of ${kill.limit})`;
  return new LimitError(
    429,
    "rate_limit_error",
    "agent_run_killed",
    `agent run ${runId}${agentType ? ` (${agentType})` : ""} ${what}; every further call of this run is refused (unkill with \`tollgate runs unkill ${runId}\`)`,
    null,
    {
      agent_run: {
        id: runId,
        agent_type: agentType,
        ceiling: kill.ceiling,
        value: kill.value,
        limit: kill.limit,
        killed_at: iso(kill.at),
      },
    },
  );
}

/**
 * A call of a run whose calls in flight hold what is left under its cost or token ceiling: not a kill, room
 * again (or the kill) once they settle. rate_limited with a short Retry-After, so the SDKs retry it.
 */
export function runHeld(
  runId: string,
  agentType: string | null,
  held: HeldCeiling,
  hold: RunHold,
  call: HeldCall,
): LimitError {
  return new LimitError(
    429,
    "rate_limit_error",
    "rate_limited",
    runHeldMessage(runId, agentType, held, hold, call),
    IN_FLIGHT_RETRY_S,
    {
      agent_run: {
        id: runId,
        agent_type: agentType,
        ceiling: held.ceiling,
        used: held.used,
        held: held.held,
        limit: held.limit,
        requested: heldRequest(held, hold),
        ...(held.kept !== undefined && { kept: held.kept }),
      },
    },
  );
}

export function unpricedBlocked(b: Budget, provider: string, model: string): LimitError {
  return new LimitError(
    403,
    "permission_error",
    "model_unpriced",
    `budget ${b.id} blocks models without a price, and ${provider}/${model} has none: add it to the price book`,
    null,
    { budget: { id: b.id, scope: b.scope }, provider, model },
  );
}

export function limitsUnavailable(backend: string, cause: string): LimitError {
  return new LimitError(
    503,
    "api_error",
    "limits_unavailable",
    `the limit backend (${backend}) is unreachable and a budget here fails closed: ${cause}`,
    1,
    { backend },
  );
}
