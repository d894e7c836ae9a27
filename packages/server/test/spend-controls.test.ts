// Spend controls through the gateway, driven by the official SDKs against the fixture-replaying mock:
// hard caps under concurrency, typed 429s, restart survival, agent-run kill switches, rate limits.
import { rmSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import Anthropic from "@anthropic-ai/sdk";
import { formatUsd, usdToNano, uuidv7 } from "@tollgate/core";
import OpenAI from "openai";
import { Pool } from "undici";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  adminRequest,
  gatewayRecords,
  type Json,
  nanoChat,
  okOrCode,
  postEvents,
  recordByEventId,
  startTestGateway,
} from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";

let mock: MockUpstream;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startTestGateway(mock.url);
});
afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

/** An admin API call as the local admin (root token). */
const api = (method: string, path: string, body?: unknown, base = gw) =>
  adminRequest(base, method, path, body);

const client = (headers: Record<string, string>, base = gw) =>
  new OpenAI({ apiKey: "sk-test", baseURL: `${base.url}/v1`, maxRetries: 0, defaultHeaders: headers });

// A ~4,000-token prompt, the size of the prompt behind the cache-write fixture (4,020 input tokens):
// the worst-case reservation is computed from what the request really sends.
const LONG_PROMPT = "lorem ipsum dolor sit amet ".repeat(600);
const CACHE_WRITE = "openai/chat-completion.gpt-5.6-sol.cache-write.json"; // $0.020172 per call

const costOf = async (user: string) =>
  (await gatewayRecords(gw.runtime))
    .filter((r) => r.user_id === user)
    .reduce((a, r) => a + r.cost_nanousd, 0n);

describe("hard caps", () => {
  it("200 concurrent calls against a $1.00 cap: spend never exceeds it; the refused get a typed 429", async () => {
    expect(
      (
        await api("POST", "/api/budgets", {
          id: "conc",
          scope: { user_id: "u-conc" },
          window: "day",
          limit_usd: "1.00",
        })
      ).status,
    ).toBe(201);
    const oa = client({ "x-tollgate-user-id": "u-conc", "x-mock-fixture": CACHE_WRITE });
    const call = () =>
      oa.chat.completions.create({
        model: "gpt-5.6-sol",
        max_completion_tokens: 64,
        messages: [{ role: "user", content: LONG_PROMPT }],
      });
    const results = await Promise.allSettled(Array.from({ length: 200 }, call));
    const ok = results.filter((r) => r.status === "fulfilled").length;
    const refused = results
      .filter((r) => r.status === "rejected")
      .map((r) => (r as PromiseRejectedResult).reason);
    expect(ok).toBeGreaterThan(10);
    expect(refused.length).toBe(200 - ok);
    for (const e of refused) {
      expect(e).toBeInstanceOf(OpenAI.RateLimitError);
      expect(e.status).toBe(429);
      expect(e.code).toBe("budget_exceeded");
      expect(e.error.budget).toMatchObject({ id: "conc", limit_usd: "1.00", window: "day" });
      expect(Number(e.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    // Later calls fill the cap as reservations settle, one at a time, and still never pass it.
    for (let i = 0; i < 60; i++) await call().catch(() => {});
    const spent = await costOf("u-conc");
    expect(spent <= usdToNano("1.00")).toBe(true);
    expect(spent > usdToNano("0.90")).toBe(true); // the cap is usable almost to the cent
    const status = await api("GET", "/api/budgets/conc");
    expect(status.json).toMatchObject({ id: "conc", state: "ok", limit_usd: "1.00", reserved_usd: "0.00" });
    expect(status.json.spend_usd).toBe(formatUsd(spent));
  });

  it("through the Anthropic SDK the refusal is an Anthropic RateLimitError in Anthropic's error shape", async () => {
    await api("POST", "/api/budgets", {
      id: "tiny",
      scope: { feature: "tiny" },
      window: "month",
      limit_usd: "0.000001",
    });
    let sent = 0;
    const an = new Anthropic({
      apiKey: "sk-ant",
      baseURL: gw.url,
      // The SDK's own retries stay on: a refusal until the month's end tells it not to (x-should-retry).
      fetch: ((url: string, init?: RequestInit) => {
        sent++;
        return fetch(url, init);
      }) as typeof fetch,
      defaultHeaders: { "x-tollgate-feature": "tiny" },
    });
    const err = await an.messages
      .create({ model: "claude-sonnet-4-5", max_tokens: 100, messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    expect(sent).toBe(1);
    expect(err.headers.get("x-should-retry")).toBe("false");
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect(err.error).toMatchObject({
      type: "error",
      error: { type: "rate_limit_error", code: "budget_exceeded", budget: { id: "tiny" } },
    });
  });

  it("a refusal only calls in flight cause is retried by the SDK, not put off until the window resets", async () => {
    // gpt-4.1-nano, max_tokens 400: $0.0001684 held, $0.0001468 spent. Room for one hold, and for a second
    // call once the first has settled.
    // A lifetime window: a day's would reset at midnight under a run that crosses it (the SDK, told to
    // wait for the reset, would wait for it and succeed).
    await api("POST", "/api/budgets", {
      id: "in-flight",
      scope: { feature: "in-flight" },
      window: "lifetime",
      limit_usd: "0.00032",
    });
    const body = {
      model: "gpt-4.1-nano",
      max_tokens: 400,
      messages: [{ role: "user" as const, content: "x" }],
    };
    const slow = client({ "x-tollgate-feature": "in-flight", "x-mock-headers-delay-ms": "300" });
    const first = slow.chat.completions.create(body);
    await vi.waitFor(async () => {
      expect((await api("GET", "/api/budgets/in-flight")).json.reserved_usd).not.toBe("0.00");
    });
    const refusal = await client({ "x-tollgate-feature": "in-flight" })
      .chat.completions.create(body)
      .catch((e) => e);
    expect(refusal).toBeInstanceOf(OpenAI.RateLimitError);
    expect(refusal.code).toBe("budget_exceeded");
    // was: the seconds until midnight, and x-should-retry: false, as for a budget spent until its reset
    expect(refusal.headers.get("retry-after")).toBe("1");
    expect(refusal.headers.get("x-should-retry")).toBeNull();
    // the SDK's own retry (after Retry-After) finds the first call settled and room for this one
    let sent = 0;
    const retrying = new OpenAI({
      apiKey: "sk-test",
      baseURL: `${gw.url}/v1`,
      maxRetries: 2,
      defaultHeaders: { "x-tollgate-feature": "in-flight" },
      fetch: ((url: string, init?: RequestInit) => {
        sent++;
        return fetch(url, init);
      }) as typeof fetch,
    });
    const second = retrying.chat.completions.create(body);
    await expect(first).resolves.toBeTruthy();
    await expect(second).resolves.toBeTruthy();
    expect(sent).toBe(2);
    // a budget spent until its reset is still final
    const spent = await retrying.chat.completions.create(body).catch((e) => e);
    expect(spent.code).toBe("budget_exceeded");
    expect(spent.headers.get("x-should-retry")).toBe("false");
    expect(sent).toBe(3);
  });

  it("per-customer caps with overrides: each customer has its own bucket; acme gets more", async () => {
    await api("POST", "/api/budgets", {
      id: "per-customer",
      scope: { customer_id: "*", feature: "tiers" },
      window: "day",
      limit_usd: "0.0003",
      overrides: [{ when: { customer_id: "acme" }, limit_usd: "5.00" }],
    });
    const call = (customer: string) =>
      okOrCode(
        client({ "x-tollgate-customer-id": customer, "x-tollgate-feature": "tiers" }).chat.completions.create(
          {
            model: "gpt-4.1-nano",
            max_tokens: 400,
            messages: [{ role: "user", content: "hello" }],
          },
        ),
      );
    // gpt-4.1-nano: ~$0.0002 worst case for this request, $0.000147 actual.
    expect([await call("free-1"), await call("free-1"), await call("free-1")]).toEqual([
      "ok",
      "budget_exceeded",
      "budget_exceeded",
    ]);
    expect(await call("free-2")).toBe("ok"); // another customer, another bucket
    expect([await call("acme"), await call("acme"), await call("acme")]).toEqual(["ok", "ok", "ok"]);
    await gw.runtime.recorder.flush(); // buckets are listed from stored spend
    const { json } = await api("GET", "/api/budgets/per-customer");
    const byCustomer = Object.fromEntries(json.buckets.map((b: Json) => [b.bucket.customer_id, b]));
    expect(byCustomer.acme.limit_usd).toBe("5.00");
    expect(byCustomer["free-1"]).toMatchObject({ limit_usd: "0.0003", spend_usd: "0.0001468" });
  });

  it("a refusal names its bucket by field, a call without the field as the bucket of calls without one, and how to reserve less", async () => {
    await api("POST", "/api/budgets", {
      id: "per-user-named",
      scope: { user_id: "*", feature: "named" },
      window: "day",
      limit_usd: "0.50",
    });
    // No max_tokens: the worst case is gpt-4o's whole context window as output, $1.28.
    const refusal = async (headers: Record<string, string>) => {
      const e = await client({ "x-tollgate-feature": "named", ...headers })
        .chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })
        .catch((err: unknown) => err as Error & { code?: string });
      expect((e as { code?: string }).code).toBe("budget_exceeded");
      return (e as Error).message;
    };
    const named = await refusal({ "x-tollgate-user-id": "u-9" });
    expect(named).toContain('budget per-user-named for user_id "u-9" would be exceeded');
    expect(named).toMatch(/max_tokens.*context window/);
    expect(await refusal({})).toContain(
      "budget per-user-named for user_id (none: calls without one share this bucket) would be exceeded",
    );
    // Spent up, a smaller call would not fit either: the refusal does not suggest one.
    const spent = {
      event_id: uuidv7(),
      ts_start: Date.now(),
      kind: "tool",
      cost_nanousd: usdToNano("0.60").toString(),
      user_id: "u-spent",
      feature: "named",
    };
    expect((await postEvents(gw.runtime.app, gw.runtime.rootToken, [spent])).json.accepted).toBe(1);
    const spentUp = await refusal({ "x-tollgate-user-id": "u-spent" });
    expect(spentUp).toContain('for user_id "u-spent" would be exceeded: $0.60 spent');
    expect(spentUp).not.toContain("max_tokens");
  });

  it("a budget created mid-window counts the spend its window already holds", async () => {
    const oa = client({ "x-tollgate-user-id": "u-late", "x-mock-fixture": CACHE_WRITE });
    const ask = () =>
      oa.chat.completions.create({
        model: "gpt-5.6-sol",
        max_completion_tokens: 64,
        messages: [{ role: "user", content: LONG_PROMPT }],
      });
    await ask();
    await ask();
    await gw.runtime.recorder.flush();
    await api("POST", "/api/budgets", {
      id: "late",
      scope: { user_id: "u-late" },
      window: "day",
      limit_usd: "0.10",
    });
    expect((await api("GET", "/api/budgets/late")).json.spend_usd).toBe("0.040344");
    // $0.040344 spent + $0.083 worst case > $0.10
    expect(await okOrCode(ask())).toBe("budget_exceeded");
  });

  it("unpriced models: a budget with unpriced=block refuses them, with a clear error", async () => {
    await api("POST", "/api/budgets", {
      id: "no-unpriced",
      scope: { feature: "strict" },
      window: "day",
      limit_usd: "10",
      unpriced: "block",
    });
    const err = await client({ "x-tollgate-feature": "strict" })
      .chat.completions.create({ model: "mystery-model-9", messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(err.code).toBe("model_unpriced");
    expect(err.message).toContain("mystery-model-9");
  });
});

describe("states, alerts and audit", () => {
  it("ok → warning → exceeded transitions are recorded with spend, limit and the triggering call", async () => {
    await api("POST", "/api/budgets", {
      id: "watch",
      scope: { feature: "watch" },
      window: "week",
      limit_usd: "0.04",
      warn_at: [0.5, 0.8],
      action: "alert_only",
    });
    const oa = client({ "x-tollgate-feature": "watch", "x-mock-fixture": CACHE_WRITE });
    for (let i = 0; i < 3; i++)
      await oa.chat.completions.create({
        model: "gpt-5.6-sol",
        max_completion_tokens: 64,
        messages: [{ role: "user", content: LONG_PROMPT }],
      });
    // alert_only never refuses: the third call went through although the first two spent $0.0403
    const { json } = await api("GET", "/api/limit-events?type=budget_state&subject=watch");
    const steps = json.events.map((e: Json) => [e.from_state, e.to_state, e.detail.level]);
    expect(steps).toEqual([
      ["ok", "warning", 1],
      ["warning", "exceeded", 3],
    ]);
    const exceeded = json.events[1];
    expect(exceeded.limit_nanousd).toBe(usdToNano("0.04").toString());
    expect(BigInt(exceeded.spend_nanousd) >= usdToNano("0.04")).toBe(true);
    const recs = await gatewayRecords(gw.runtime);
    expect(recs.some((r) => r.event_id === exceeded.event_id && r.feature === "watch")).toBe(true);
  });

  it("every budget change is audited (who, when, before, after); bad budgets are refused field by field", async () => {
    const b = { id: "audited", scope: { user_id: "x" }, window: "day", limit_usd: "1.00" };
    expect((await api("PUT", "/api/budgets/audited", b)).status).toBe(201);
    expect((await api("PUT", "/api/budgets/audited", { ...b, limit_usd: "2.50" })).status).toBe(200);
    expect((await api("DELETE", "/api/budgets/audited")).status).toBe(200);
    const never = await api("GET", "/api/budgets/never-was/audit");
    expect(never.status).toBe(404);
    expect(never.json.error).toMatchObject({ code: "not_found", param: "id" });
    const { json } = await api("GET", "/api/budgets/audited/audit");
    expect(
      json.audit.map((a: Json) => [
        a.action,
        a.actor,
        a.before?.limit_usd ?? null,
        a.after?.limit_usd ?? null,
      ]),
    ).toEqual([
      ["create", "local-admin", null, "1.00"],
      ["update", "local-admin", "1.00", "2.50"],
      ["delete", "local-admin", "2.50", null],
    ]);
    const bad = await api("POST", "/api/budgets", {
      id: "bad one",
      window: "fortnight",
      limit_usd: 5,
      action: "throttle",
      scope: { colour: "red" },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe("invalid_policy");
    expect(bad.json.error.errors.map((e: Json) => e.field).sort()).toEqual(
      ["id", "limit_usd", "scope.colour", "window"].sort(),
    );
    expect((await api("GET", "/api/budgets/bad%20one")).status).toBe(400);
  });
});

describe("rate limits and throttling", () => {
  it("requests per minute: the call past the limit gets 429 rate_limited with Retry-After", async () => {
    await api("POST", "/api/rate-limits", {
      id: "rpm",
      scope: { feature: "rpm", user_id: "*" },
      requests_per_min: 3,
    });
    const oa = client({ "x-tollgate-feature": "rpm", "x-tollgate-user-id": "r1" });
    const call = () =>
      oa.chat.completions.create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] }).then(
        () => "ok",
        (e) => e,
      );
    const out = [await call(), await call(), await call(), await call()];
    expect(out.slice(0, 3)).toEqual(["ok", "ok", "ok"]);
    const e = out[3] as Json;
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    expect(e.code).toBe("rate_limited");
    expect(e.error.rate_limit).toMatchObject({ id: "rpm", metric: "requests", limit: 3, window: "1m" });
    expect(Number(e.headers.get("retry-after"))).toBeGreaterThan(0);
    // another user of the same feature has their own counter
    expect(
      await client({ "x-tollgate-feature": "rpm", "x-tollgate-user-id": "r2" })
        .chat.completions.create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] })
        .then(() => "ok"),
    ).toBe("ok");
  });

  it("tokens per minute: Retry-After is when the sliding minute has room again, not the minute's end", async () => {
    await api("POST", "/api/rate-limits", { id: "tpm", scope: { feature: "tpm" }, tokens_per_min: 100 });
    // Not in the last seconds of a minute: the call and its refusal fall in the same one.
    while (Date.now() % 60_000 > 55_000) await sleep(100);
    const oa = client({ "x-tollgate-feature": "tpm" });
    const call = () =>
      oa.chat.completions.create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] });
    await call(); // its tokens, several times the limit, all count in this minute
    const e = await call().catch((x) => x);
    const leftInMinute = 60 - Math.floor((Date.now() % 60_000) / 1000);
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    expect(e.code).toBe("rate_limited");
    expect(e.error.rate_limit.count).toBeGreaterThan(100);
    // As the next minute starts this one's tokens count in full: the limit clears well into it (was:
    // the seconds left in this minute, after which the same call is refused again).
    const retryAfter = Number(e.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(leftInMinute + 30);
    expect(Date.parse(e.error.rate_limit.reset_at)).toBeGreaterThan(Date.now() + (leftInMinute + 29) * 1000);
    // Past the SDKs' 60 s horizon (a refusal in a minute's first half) they are told not to retry it on
    // their own backoff; within it, nothing is said.
    expect(e.headers.get("x-should-retry")).toBe(retryAfter > 60 ? "false" : null);
  });

  it("tokens per minute under concurrency: calls in flight hold their estimate, so they cannot all pass", async () => {
    await api("POST", "/api/rate-limits", {
      id: "tpm-conc",
      scope: { feature: "tpm-conc" },
      tokens_per_min: 2000,
    });
    while (Date.now() % 60_000 > 50_000) await sleep(100); // all of it in one minute
    // Held in flight for 300 ms each: without holds all 8 passed, their tokens counted only as they settled.
    const oa = client({ "x-tollgate-feature": "tpm-conc", "x-mock-headers-delay-ms": "300" });
    const body = {
      model: "gpt-4.1-nano",
      max_tokens: 500,
      messages: [{ role: "user" as const, content: "hi" }],
    };
    const hold = Math.ceil(Buffer.byteLength(JSON.stringify(body)) / 4) + 500;
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => oa.chat.completions.create(body)),
    );
    const refused = results
      .filter((r) => r.status === "rejected")
      .map((r) => (r as PromiseRejectedResult).reason);
    expect(results.length - refused.length).toBe(Math.floor(2000 / hold)); // 3 holds of ~523 fit in 2,000
    for (const e of refused) {
      expect(e).toBeInstanceOf(OpenAI.RateLimitError);
      expect(e.code).toBe("rate_limited");
      expect(e.error.rate_limit).toMatchObject({ id: "tpm-conc", metric: "tokens", limit: 2000 });
      // JSON.stringify's bytes are the SDK's: the hold is exactly the estimate
      expect(e.error.rate_limit.held).toBe(hold);
      expect(e.message).toContain(`this call holds ${hold}`);
    }
  });

  it("tokens per minute: a reply that reports no usage counts the estimate its call held, not 0", async () => {
    await api("POST", "/api/rate-limits", {
      id: "tpm-mute",
      scope: { feature: "tpm-mute" },
      tokens_per_min: 2000,
    });
    while (Date.now() % 60_000 > 50_000) await sleep(100); // all of it in one minute
    const oa = client({
      "x-tollgate-feature": "tpm-mute",
      "x-mock-fixture": "openai/billing.costs-api.example.json",
    });
    const body = {
      model: "gpt-4.1-nano",
      max_tokens: 500,
      messages: [{ role: "user" as const, content: "hi" }],
    };
    // ~523 tokens each: three fit in 2,000, the fourth does not.
    for (let i = 0; i < 3; i++) await oa.chat.completions.create(body);
    const e = await oa.chat.completions.create(body).catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    expect(e.error.rate_limit).toMatchObject({ id: "tpm-mute", metric: "tokens", limit: 2000 });
  });

  it("throttle: past its cap a budget admits only throttle_rpm calls a minute instead of blocking", async () => {
    await api("POST", "/api/budgets", {
      id: "slow",
      scope: { feature: "slow" },
      window: "day",
      limit_usd: "0.0001",
      action: "throttle",
      throttle_rpm: 2,
    });
    const oa = client({ "x-tollgate-feature": "slow" });
    const call = () => nanoChat(oa, "hi");
    // 1st call spends past the cap; then 2 a minute pass and the rest are throttled
    expect([await call(), await call(), await call(), await call()]).toEqual([
      "ok",
      "ok",
      "ok",
      "rate_limited",
    ]);
  });

  it("a call admitted under a budget's throttle whose client leaves before it goes upstream gives back its count", async () => {
    const one = await startTestGateway(mock.url, { upstreamConnections: 1 });
    try {
      await api(
        "POST",
        "/api/budgets",
        {
          id: "quit-slow",
          scope: { feature: "quit-slow" },
          window: "day",
          limit_usd: "0.0000001",
          action: "throttle",
          throttle_rpm: 2,
        },
        one,
      );
      const headers = { "x-tollgate-feature": "quit-slow", "x-test-case": "quitter-4" };
      expect(await nanoChat(client(headers, one))).toBe("ok"); // spends past the cap: throttled from here on
      // The one upstream connection is busy for 400 ms (a call of no limit): a call admitted under the
      // throttle after it waits for it, and its client gives up meanwhile.
      const busy = nanoChat(client({ "x-mock-headers-delay-ms": "400" }, one));
      await sleep(100);
      const gone = new AbortController();
      const abandoned = client(headers, one)
        .chat.completions.create(
          { model: "gpt-4.1-nano", messages: [{ role: "user", content: "left" }] },
          { signal: gone.signal },
        )
        .catch((e) => e);
      await sleep(100);
      gone.abort();
      expect(await abandoned).toBeInstanceOf(OpenAI.APIUserAbortError);
      expect(await busy).toBe("ok");
      // Two calls a minute past the cap: the two sent now, not the one never sent.
      expect([await nanoChat(client(headers, one)), await nanoChat(client(headers, one))]).toEqual([
        "ok",
        "ok",
      ]);
      expect(mock.requests.filter((r) => r.headers["x-test-case"] === "quitter-4")).toHaveLength(3);
    } finally {
      await one.stop();
    }
  });
});

describe("agent runs", () => {
  it("a runaway agent loop is killed at its cost ceiling: no call after the one that crossed it", async () => {
    expect(
      (await api("PUT", "/api/agents/support-bot", { max_cost_usd: "0.05", max_llm_calls: 1000 })).status,
    ).toBe(201);
    const oa = client({ "x-tollgate-agent-run-id": "run-away-1", "x-tollgate-agent-type": "support-bot" });
    const costs: bigint[] = [];
    let refusal: Json = null;
    for (let step = 0; step < 100 && !refusal; step++) {
      // an agent loop: ask the model, "run the tool", ask again (o3-mini reasoning reply: $0.0108427)
      const res = await oa.chat.completions
        .create({
          model: "o3-mini",
          max_completion_tokens: 3000,
          messages: [{ role: "user", content: `step ${step}` }],
        })
        .withResponse()
        .catch((e) => e);
      if (res instanceof Error) refusal = res;
      else costs.push(usdToNano(res.response.headers.get("x-tollgate-cost-usd")!));
    }
    const ceiling = usdToNano("0.05");
    const total = costs.reduce((a, b) => a + b, 0n);
    const beforeLast = total - costs[costs.length - 1]!;
    expect(beforeLast < ceiling).toBe(true); // every call but the last was under the ceiling…
    expect(total >= ceiling).toBe(true); // …the last crossed it, and nothing ran after it
    expect(costs.length).toBe(5);
    expect(refusal).toBeInstanceOf(OpenAI.RateLimitError);
    expect(refusal.code).toBe("agent_run_killed");
    expect(refusal.error.agent_run).toMatchObject({
      id: "run-away-1",
      agent_type: "support-bot",
      ceiling: "cost_nanousd",
      limit: ceiling.toString(),
    });
    // every further call of the run is refused; other runs are not affected
    const again = await oa.chat.completions
      .create({ model: "o3-mini", messages: [{ role: "user", content: "x" }] })
      .catch((e) => e);
    expect(again.code).toBe("agent_run_killed");
    const other = client({ "x-tollgate-agent-run-id": "run-ok-2", "x-tollgate-agent-type": "support-bot" });
    await expect(
      other.chat.completions.create({ model: "o3-mini", messages: [{ role: "user", content: "x" }] }),
    ).resolves.toBeTruthy();
    const run = await api("GET", "/api/runs/run-away-1");
    expect(run.json).toMatchObject({
      state: "killed",
      usage: { llm_calls: 5, cost_nanousd: total.toString() },
    });
    const kills = await api("GET", "/api/limit-events?type=run_killed&subject=run-away-1");
    expect(kills.json.events).toHaveLength(1);
  });

  it("parallel calls of a run hold their worst case against its cost ceiling: they take turns near it, and the overshoot is one call's, as in a loop", async () => {
    await api("PUT", "/api/agents/fan-out-bot", { max_cost_usd: "0.05" });
    const oa = client({
      "x-tollgate-agent-run-id": "fan-out-1",
      "x-tollgate-agent-type": "fan-out-bot",
      "x-mock-headers-delay-ms": "200", // all ten are in flight together
      "x-test-case": "fan-out-1",
    });
    // o3-mini, max_completion_tokens 3000: ~$0.0133 held, $0.0108427 spent. Four holds fit under $0.05 at
    // once; the others wait for them to settle, and go while spent + held stays under the ceiling.
    const call = (step: number) =>
      okOrCode(
        oa.chat.completions.create({
          model: "o3-mini",
          max_completion_tokens: 3000,
          messages: [{ role: "user", content: `branch ${step}` }],
        }),
      );
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => call(i)));
    // The fifth crosses the ceiling and kills the run; the five still waiting are refused by the kill.
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(5);
    expect(outcomes.filter((o) => o === "agent_run_killed")).toHaveLength(5);
    expect(mock.requests.filter((r) => r.headers["x-test-case"] === "fan-out-1")).toHaveLength(5);
    const run = await api("GET", "/api/runs/fan-out-1");
    expect(run.json).toMatchObject({ state: "killed", usage: { llm_calls: 5 } });
    // Spent as a sequential loop would have: the call that crossed the ceiling was the last (without holds,
    // all ten ran: $0.108).
    expect(BigInt(run.json.usage.cost_nanousd)).toBe(5n * usdToNano("0.0108427"));
  });

  it("a run's call whose reply reports no usage counts its worst case, as budgets charge it", async () => {
    await api("PUT", "/api/agents/mute-bot", { max_cost_usd: "1.00" });
    const oa = client({
      "x-tollgate-agent-run-id": "mute-1",
      "x-tollgate-agent-type": "mute-bot",
      // A 200 whose JSON holds no usage: the call's cost is unknown.
      "x-mock-fixture": "openai/billing.costs-api.example.json",
    });
    const { response } = await oa.chat.completions
      .create({ model: "o3-mini", max_completion_tokens: 3000, messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    const rec = await recordByEventId(gw.runtime, response.headers.get("x-tollgate-event-id"));
    expect(rec).toMatchObject({ error_type: "usage_unreadable", cost_nanousd: 0n });
    const run = await api("GET", "/api/runs/mute-1");
    expect(run.json.usage.llm_calls).toBe(1);
    // o3-mini's worst case for this request: 3,000 output tokens at $4.40/M plus its input estimate.
    const held = BigInt(run.json.usage.cost_nanousd);
    expect(held).toBeGreaterThan(usdToNano("0.0132"));
    expect(held).toBeLessThan(usdToNano("0.0134"));
  });

  it("a run's call whose reply reports no usage counts its token estimate against a token ceiling", async () => {
    // Counted 0 tokens, a run with a token ceiling alone could go on without end on such replies.
    await api("PUT", "/api/agents/mute-token-bot", { max_total_tokens: 100_000 });
    const oa = client({
      "x-tollgate-agent-run-id": "mute-tokens-1",
      "x-tollgate-agent-type": "mute-token-bot",
      "x-mock-fixture": "openai/billing.costs-api.example.json",
    });
    await oa.chat.completions.create({
      model: "o3-mini",
      max_completion_tokens: 3000,
      messages: [{ role: "user", content: "hi" }],
    });
    const run = await api("GET", "/api/runs/mute-tokens-1");
    expect(run.json.usage.llm_calls).toBe(1);
    // The call's estimate: its 3,000 output tokens and its input.
    expect(run.json.usage.total_tokens).toBeGreaterThan(3000);
    expect(run.json.usage.total_tokens).toBeLessThan(3100);
  });

  it("with no wait configured, a call the holds of its run's calls in flight turn away gets a 429 that says so, and is no kill", async () => {
    const now = await startTestGateway(mock.url, { runHoldWaitMs: 0 });
    try {
      await api("PUT", "/api/agents/held-bot", { max_cost_usd: "0.01" }, now);
      const headers = { "x-tollgate-agent-run-id": "held-1", "x-tollgate-agent-type": "held-bot" };
      const slow = client({ ...headers, "x-mock-headers-delay-ms": "300" }, now);
      const first = slow.chat.completions.create({
        model: "o3-mini",
        max_completion_tokens: 3000,
        messages: [{ role: "user", content: "a" }],
      });
      await new Promise((r) => setTimeout(r, 100));
      const e = await client(headers, now)
        .chat.completions.create({
          model: "o3-mini",
          max_completion_tokens: 100,
          messages: [{ role: "user", content: "b" }],
        })
        .catch((err) => err);
      expect(e).toBeInstanceOf(OpenAI.RateLimitError);
      expect(e.code).toBe("rate_limited");
      expect(e.headers.get("retry-after")).toBe("1");
      expect(e.message).toContain("held by its calls in flight reach its cost_nanousd ceiling $0.01");
      expect(e.error.agent_run).toMatchObject({
        id: "held-1",
        agent_type: "held-bot",
        ceiling: "cost_nanousd",
        used: "0",
        limit: usdToNano("0.01").toString(),
      });
      expect(BigInt(e.error.agent_run.held)).toBeGreaterThan(usdToNano("0.01"));
      await first;
      expect((await api("GET", "/api/runs/held-1", undefined, now)).json).toMatchObject({
        state: "killed",
        usage: { llm_calls: 1 },
      });
    } finally {
      await now.stop();
    }
  });

  it("a waiting call whose client leaves goes nowhere: nothing is sent, counted or held for it", async () => {
    await api("PUT", "/api/agents/leaver-bot", { max_cost_usd: "0.05" });
    const headers = {
      "x-tollgate-agent-run-id": "leaver-1",
      "x-tollgate-agent-type": "leaver-bot",
      "x-test-case": "leaver-1",
    };
    const slow = client({ ...headers, "x-mock-headers-delay-ms": "400" });
    // Four holds of ~$0.0133 fill the ceiling for 400 ms.
    const first = Array.from({ length: 4 }, (_, i) =>
      slow.chat.completions.create({
        model: "o3-mini",
        max_completion_tokens: 3000,
        messages: [{ role: "user", content: `a${i}` }],
      }),
    );
    await new Promise((r) => setTimeout(r, 100));
    const gone = new AbortController();
    const waiting = client(headers)
      .chat.completions.create(
        { model: "o3-mini", max_completion_tokens: 3000, messages: [{ role: "user", content: "b" }] },
        { signal: gone.signal },
      )
      .catch((e) => e);
    await new Promise((r) => setTimeout(r, 100));
    gone.abort();
    expect(await waiting).toBeInstanceOf(OpenAI.APIUserAbortError);
    await Promise.all(first);
    await new Promise((r) => setTimeout(r, 200));
    expect(mock.requests.filter((r) => r.headers["x-test-case"] === "leaver-1")).toHaveLength(4);
    const run = await api("GET", "/api/runs/leaver-1");
    expect(run.json).toMatchObject({ state: "running", usage: { llm_calls: 4 } });
  });

  /**
   * Run `<name>-1` of agent type `<name>-bot` under a $0.01 ceiling, and its call `n` (header x-seq), answered
   * after `delayMs`: gpt-4.1-nano, max_tokens 32768, ~$0.0131 held (past the ceiling by itself), $0.0001468
   * spent, so one call at a time: each waits for the one in flight to settle.
   */
  async function oneAtATimeRun(name: string) {
    await api("PUT", `/api/agents/${name}-bot`, { max_cost_usd: "0.01" });
    return (n: number, delayMs: number) =>
      okOrCode(
        client({
          "x-tollgate-agent-run-id": `${name}-1`,
          "x-tollgate-agent-type": `${name}-bot`,
          "x-test-case": `${name}-1`,
          "x-seq": String(n),
          "x-mock-headers-delay-ms": String(delayMs),
        }).chat.completions.create({
          model: "gpt-4.1-nano",
          max_tokens: 32768,
          messages: [{ role: "user", content: `${name} ${n}` }],
        }),
      );
  }

  it("calls of a run waiting for room go in the order they came, each as soon as the call before it settles", async () => {
    const call = await oneAtATimeRun("line");
    const calls = [call(0, 600)];
    for (let n = 1; n <= 6; n++) {
      await sleep(50);
      calls.push(call(n, 40));
    }
    expect(await Promise.all(calls)).toEqual(Array(7).fill("ok"));
    const sent = mock.requests.filter((r) => r.headers["x-test-case"] === "line-1");
    expect(sent.map((r) => r.headers["x-seq"])).toEqual(["0", "1", "2", "3", "4", "5", "6"]);
  });

  it("a run's waiting calls keep the order they came in when the wall clock steps back meanwhile", async () => {
    const call = await oneAtATimeRun("step");
    const wallClock = Date.now.bind(Date);
    const clock = vi.spyOn(Date, "now");
    const sent = () => mock.requests.filter((r) => r.headers["x-test-case"] === "step-1");
    try {
      const calls = [call(0, 500)];
      while (!sent().length) await sleep(10); // in flight: the others wait for it
      for (let n = 1; n <= 4; n++) {
        await sleep(50);
        // The clock steps back 5 s (an NTP correction) after the second call came: the later ones read
        // earlier times than the calls waiting ahead of them.
        clock.mockImplementation(() => (n >= 3 ? wallClock() - 5_000 : wallClock()));
        calls.push(call(n, 40));
      }
      expect(await Promise.all(calls)).toEqual(Array(5).fill("ok"));
    } finally {
      clock.mockRestore();
    }
    expect(sent().map((r) => r.headers["x-seq"])).toEqual(["0", "1", "2", "3", "4"]);
  });

  it("a run's waiting call waits for room, not out of time, when the wall clock steps forward meanwhile", async () => {
    const call = await oneAtATimeRun("leap");
    const wallClock = Date.now.bind(Date);
    const clock = vi.spyOn(Date, "now");
    const sent = () => mock.requests.filter((r) => r.headers["x-test-case"] === "leap-1");
    try {
      const first = call(0, 600);
      while (!sent().length) await sleep(10); // in flight: the second waits for it
      const second = call(1, 40);
      await sleep(200);
      // The clock steps 10 minutes forward (an NTP correction): far past the 30 s wait, were it timed by it.
      clock.mockImplementation(() => wallClock() + 600_000);
      expect(await Promise.all([first, second])).toEqual(["ok", "ok"]);
    } finally {
      clock.mockRestore();
    }
    expect(sent().map((r) => r.headers["x-seq"])).toEqual(["0", "1"]);
  });

  it("a gateway's retry of a run's call keeps its call's place through its backoff: the room its failed attempt leaves is not taken by a call that came after it", async () => {
    await api("PUT", "/api/agents/retry-line-bot", { max_cost_usd: "0.01" });
    const headers = {
      "x-tollgate-agent-run-id": "retry-line-1",
      "x-tollgate-agent-type": "retry-line-bot",
      "x-test-case": "retry-line-1",
    };
    // One call at a time, as above.
    const call = (seq: string, more: Record<string, string>) =>
      okOrCode(
        client({ ...headers, "x-seq": seq, ...more }).chat.completions.create({
          model: "gpt-4.1-nano",
          max_tokens: 32768,
          messages: [{ role: "user", content: `retry line ${seq}` }],
        }),
      );
    // The first is answered 500 after 300 ms, and retried by the gateway (after up to 250 ms). The second
    // and the third, waiting for it, wait for its retry too: it came first.
    const first = call("first", {
      "x-tollgate-retries": "1",
      "x-mock-scenario": "server-error-once",
      "x-mock-headers-delay-ms": "300",
    });
    await sleep(100);
    const second = call("second", { "x-mock-headers-delay-ms": "500" });
    await sleep(100);
    const third = call("third", {});
    expect(await Promise.all([first, second, third])).toEqual(["ok", "ok", "ok"]);
    const sent = mock.requests.filter((r) => r.headers["x-test-case"] === "retry-line-1");
    expect(sent.map((r) => r.headers["x-seq"])).toEqual(["first", "first", "second", "third"]);
  });

  it("a gateway's retry of a run's call whose client leaves during its backoff leaves the line: the call behind it goes at once", async () => {
    await api("PUT", "/api/agents/retry-quit-bot", { max_cost_usd: "0.01" });
    const headers = {
      "x-tollgate-agent-run-id": "retry-quit-1",
      "x-tollgate-agent-type": "retry-quit-bot",
      "x-test-case": "retry-quit-1",
    };
    const body = (seq: string) => ({
      model: "gpt-4.1-nano",
      max_tokens: 32768,
      messages: [{ role: "user" as const, content: `retry quit ${seq}` }],
    });
    const sent = () => mock.requests.filter((r) => r.headers["x-test-case"] === "retry-quit-1");
    // The first is answered 429 after 300 ms, asking for 5 s: its retry keeps the head of the line meanwhile.
    const gone = new AbortController();
    const first = client({
      ...headers,
      "x-seq": "first",
      "x-tollgate-retries": "1",
      "x-mock-scenario": "rate-limit-once",
      "x-mock-retry-after": "5",
      "x-mock-headers-delay-ms": "300",
    })
      .chat.completions.create(body("first"), { signal: gone.signal })
      .catch((e) => e);
    while (!sent().length) await sleep(10);
    const second = okOrCode(
      client({ ...headers, "x-seq": "second" }).chat.completions.create(body("second")),
    );
    await sleep(500); // the first backs off, the second waits behind it
    const left = Date.now();
    gone.abort();
    expect(await first).toBeInstanceOf(OpenAI.APIUserAbortError);
    expect(await second).toBe("ok");
    expect(Date.now() - left).toBeLessThan(2_000); // not after the first's backoff, nor the second's 30 s wait
    expect(sent().map((r) => r.headers["x-seq"])).toEqual(["first", "second"]);
  });

  /**
   * Run `<name>-1` of agent type `<name>-bot` under `maxCostUsd`, and its call `seq` (header x-seq; `more`:
   * headers of its own): `model` (default gpt-4.1-nano: ~$0.0131 held), max_tokens 32768. `released`: the
   * first time a call of the run lets its hold go (a call answered 429 whose gateway retry backs off: its
   * failed attempt's).
   */
  async function retriedRun(name: string, maxCostUsd: string) {
    await api("PUT", `/api/agents/${name}-bot`, { max_cost_usd: maxCostUsd });
    const released = new Promise<void>((resolve) =>
      gw.runtime.guard.onRunReleased((_, runId) => runId === `${name}-1` && resolve()),
    );
    const call = (seq: string, more: Record<string, string>, signal?: AbortSignal, model = "gpt-4.1-nano") =>
      client({
        "x-tollgate-agent-run-id": `${name}-1`,
        "x-tollgate-agent-type": `${name}-bot`,
        "x-test-case": `${name}-1`,
        "x-seq": seq,
        ...more,
      }).chat.completions.create(
        { model, max_tokens: 32768, messages: [{ role: "user", content: `${name} ${seq}` }] },
        { signal },
      );
    const sent = () =>
      mock.requests.filter((r) => r.headers["x-test-case"] === `${name}-1`).map((r) => r.headers["x-seq"]);
    return { call, sent, released };
  }

  /** Retried by the gateway once, after a 429 asking for `seconds`. */
  const retriedAfter = (seconds: string) => ({
    "x-tollgate-retries": "1",
    "x-mock-scenario": "rate-limit-once",
    "x-mock-retry-after": seconds,
  });

  it("a call that comes while a gateway's retry of its run's call backs off goes at once when the run has room for both", async () => {
    // $0.03: room for two calls' ~$0.0131.
    const { call, sent, released } = await retriedRun("retry-room", "0.03");
    const first = okOrCode(call("first", retriedAfter("3")));
    await released; // its failed attempt's hold let go: it backs off 3 s
    // Room for its hold and for what the retry will hold: it does not wait for the retry's backoff…
    expect(await okOrCode(call("fresh", {}))).toBe("ok");
    expect(sent()).toEqual(["first", "fresh"]);
    // …and the retry finds the room it left.
    expect(await first).toBe("ok");
    expect(sent()).toEqual(["first", "fresh", "first"]);
  });

  it("a call that comes while a gateway's retry of its run's call backs off waits behind it when the run has room for one: the room its failed attempt leaves is the retry's", async () => {
    // $0.01: room for one call's ~$0.0131 at a time (nothing held, a call may hold past the ceiling).
    const { call, sent, released } = await retriedRun("retry-one", "0.01");
    const first = okOrCode(call("first", retriedAfter("1")));
    await released;
    // Nothing is held now, but there is no room for its hold and the retry's: it waits in line behind it.
    const fresh = okOrCode(call("fresh", {}));
    expect(await Promise.all([first, fresh])).toEqual(["ok", "ok"]);
    expect(sent()).toEqual(["first", "first", "fresh"]);
  });

  it("a retry backing off of a call that holds nothing of its run's cost (its model unpriced) keeps its room too: a call that comes meanwhile and would take it waits behind it", async () => {
    // $0.01: the retry, holding $0, is turned away by what is held all the same, as any call of the run.
    const { call, sent, released } = await retriedRun("retry-free", "0.01");
    const first = okOrCode(call("first", retriedAfter("1"), undefined, "mystery-model-9"));
    await released;
    // Nothing is held now, but its ~$0.0131 would leave the retry no room: it waits in line behind it.
    const fresh = okOrCode(call("fresh", {}));
    expect(await Promise.all([first, fresh])).toEqual(["ok", "ok"]);
    expect(sent()).toEqual(["first", "first", "fresh"]);
  });

  it("with no wait configured, a call with no room for itself and a retry backing off gets a 429 that names what the retry will hold", async () => {
    const now = await startTestGateway(mock.url, { runHoldWaitMs: 0 });
    try {
      await api("PUT", "/api/agents/kept-bot", { max_cost_usd: "0.01" }, now);
      const headers = { "x-tollgate-agent-run-id": "kept-1", "x-tollgate-agent-type": "kept-bot" };
      const released = new Promise<void>((resolve) => now.runtime.guard.onRunReleased(() => resolve()));
      const body = (content: string) => ({
        model: "gpt-4.1-nano",
        max_tokens: 32768, // ~$0.0131 held
        messages: [{ role: "user" as const, content }],
      });
      const first = client({ ...headers, ...retriedAfter("1") }, now).chat.completions.create(body("kept a"));
      await released;
      const e = await client(headers, now)
        .chat.completions.create(body("kept b"))
        .catch((err) => err);
      expect(e).toBeInstanceOf(OpenAI.RateLimitError);
      expect(e.code).toBe("rate_limited");
      expect(e.headers.get("retry-after")).toBe("1");
      expect(e.error.agent_run).toMatchObject({ ceiling: "cost_nanousd", used: "0", held: "0" });
      expect(e.error.agent_run.kept).toBe(e.error.agent_run.requested); // a request of the same size's
      expect(e.message).toContain(
        "would leave no room under its cost_nanousd ceiling $0.01 for an earlier call of the run waiting to go",
      );
      await first; // the retry went: the room was its
    } finally {
      await now.stop();
    }
  });

  it("a call waiting behind a gateway's retry of its run's call goes at once when the retry gives up (its client leaves during the backoff)", async () => {
    const { call, sent, released } = await retriedRun("retry-gone", "0.01");
    const limits = gw.runtime.guard.store;
    const admit = limits.admit.bind(limits);
    let turnedAway = () => {};
    const waiting = new Promise<void>((resolve) => {
      turnedAway = resolve;
    });
    limits.admit = async (req) => {
      const r = await admit(req);
      if (!r.ok && r.refusal.kind === "run_held" && req.run?.key === "r:retry-gone-1") turnedAway();
      return r;
    };
    try {
      const gone = new AbortController();
      const first = call("first", retriedAfter("8"), gone.signal).catch((e) => e);
      await released; // it backs off 8 s
      const fresh = okOrCode(call("fresh", {}));
      await waiting; // turned away, behind the retry
      const left = Date.now();
      gone.abort();
      expect(await first).toBeInstanceOf(OpenAI.APIUserAbortError);
      expect(await fresh).toBe("ok");
      expect(Date.now() - left).toBeLessThan(5_000); // not after the retry's backoff, nor its own 30 s wait
      expect(sent()).toEqual(["first", "fresh"]);
    } finally {
      limits.admit = admit;
    }
  });

  it("a call out of time behind others in line answers with its run's figures as its line last heard them, not as it joined", async () => {
    const own = await startTestGateway(mock.url, { runHoldWaitMs: 800 });
    try {
      await api("PUT", "/api/agents/stale-bot", { max_cost_usd: "0.01" }, own);
      const headers = {
        "x-tollgate-agent-run-id": "stale-1",
        "x-tollgate-agent-type": "stale-bot",
        "x-test-case": "stale-1",
      };
      // max_tokens 32768: ~$0.0131 held, one call at a time, as above; 100: ~$0.00004 held.
      const call = (seq: string, maxTokens: number, more: Record<string, string>) =>
        client({ ...headers, "x-seq": seq, ...more }, own)
          .chat.completions.create({
            model: "gpt-4.1-nano",
            max_tokens: maxTokens,
            messages: [{ role: "user", content: `stale ${seq}` }],
          })
          .then(
            () => "ok",
            (e) => e,
          );
      // The first, holding little, is answered 429 after 300 ms, asking for 400 ms: its retry keeps the head
      // of the line (its call came first) through that backoff. The second comes while the first is in
      // flight, finds room and goes at once, holding the rest for 1.4 s.
      const first = call("first", 100, {
        "x-tollgate-retries": "1",
        "x-mock-scenario": "rate-limit-once",
        "x-mock-retry-after": "0.4",
        "x-mock-headers-delay-ms": "300",
      });
      await sleep(100);
      const second = call("second", 32768, { "x-mock-headers-delay-ms": "1400" });
      await sleep(400);
      // The third waits behind the first's retry, which is turned away as its backoff ends and waits at the
      // head of the line until after the third is out of time, behind it, refused on $0 used.
      const third = call("third", 32768, {});
      await sleep(400);
      // Then the run spends $0.0003 elsewhere (a call ingested): the retry, trying again, hears it.
      const ingested = {
        event_id: uuidv7(),
        ts_start: Date.now(),
        provider: "openai",
        api: "openai.chat",
        model: "gpt-4.1-nano",
        input_uncached_tokens: 1000,
        output_tokens: 500,
        agent_run_id: "stale-1",
        agent_type: "stale-bot",
      };
      expect((await postEvents(own.runtime.app, own.runtime.rootToken, [ingested])).json.accepted).toBe(1);
      const [, early, behind] = await Promise.all([first, second, third]);
      expect(early).toBe("ok");
      expect(behind).toBeInstanceOf(OpenAI.RateLimitError);
      expect(behind.error.agent_run).toMatchObject({
        ceiling: "cost_nanousd",
        used: usdToNano("0.0003").toString(),
      });
      expect(behind.message).toContain("$0.0003 used");
    } finally {
      await own.stop();
    }
  });

  it("a waiting call is admitted as its run's call in flight settles, before that call's reply reaches its client", async () => {
    await api("PUT", "/api/agents/wake-bot", { max_cost_usd: "0.01" });
    const headers = { "x-tollgate-agent-run-id": "wake-1", "x-tollgate-agent-type": "wake-bot" };
    const body = {
      model: "gpt-4.1-nano",
      max_tokens: 32768,
      messages: [{ role: "user" as const, content: "w" }],
    };
    const first = client({ ...headers, "x-mock-headers-delay-ms": "300" }).chat.completions.create(body);
    await sleep(100);
    const waiting = client(headers).chat.completions.create(body);
    await first;
    // Not at its next poll (up to 50 ms on): admitted already, in the turn the first call settled in.
    const run = await gw.runtime.guard.store.run("default", "r:wake-1");
    expect(run?.usage.llm_calls).toBe(2);
    await waiting;
  });

  it("a call turned away as its run's call in flight settles tries again at once, not at its next poll", async () => {
    const own = await startTestGateway(mock.url);
    try {
      await api("PUT", "/api/agents/gap-bot", { max_cost_usd: "0.01" }, own);
      const oa = client({ "x-tollgate-agent-run-id": "gap-1", "x-tollgate-agent-type": "gap-bot" }, own);
      const call = (delayMs: number) =>
        okOrCode(
          oa.chat.completions.create(
            {
              model: "gpt-4.1-nano",
              max_tokens: 32768, // ~$0.0131 held: past the ceiling by itself, so one call at a time
              messages: [{ role: "user", content: "g" }],
            },
            { headers: { "x-mock-headers-delay-ms": String(delayMs) } },
          ),
        );
      const { guard } = own.runtime;
      let released = () => {};
      guard.onRunReleased(() => released());
      // The second call's refusal is answered only once the first call has settled (and let its hold go): a
      // remote limit store's round trip during which the run is released.
      const limits = guard.store;
      const admit = limits.admit.bind(limits);
      let nextTurn = false;
      let triedAgainInTurn: boolean | null = null;
      let refusals = 0;
      limits.admit = async (req) => {
        if (refusals === 1 && triedAgainInTurn === null) triedAgainInTurn = !nextTurn;
        const r = await admit(req);
        if (!r.ok && r.refusal.kind === "run_held" && ++refusals === 1) {
          await new Promise<void>((resolve) => {
            released = resolve;
          });
          setImmediate(() => {
            nextTurn = true;
          });
        }
        return r;
      };
      const first = call(500);
      await sleep(100);
      expect(await Promise.all([first, call(0)])).toEqual(["ok", "ok"]);
      expect(refusals).toBe(1);
      expect(triedAgainInTurn).toBe(true); // not RUN_HOLD_POLL_MS later
    } finally {
      await own.stop();
    }
  });

  it("a listener of run releases that throws breaks no settle, kill or unkill: each applies once", async () => {
    const own = await startTestGateway(mock.url);
    try {
      own.runtime.guard.onRunReleased(() => {
        throw new Error("listener fault");
      });
      await api("PUT", "/api/agents/fault-bot", { max_cost_usd: "1.00" }, own);
      const oa = client({ "x-tollgate-agent-run-id": "fault-1", "x-tollgate-agent-type": "fault-bot" }, own);
      const { response } = await oa.chat.completions
        .create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "x" }] })
        .withResponse();
      const cost = usdToNano(response.headers.get("x-tollgate-cost-usd")!);
      await sleep(400); // a settle taken for failed is tried again after 100 ms, then 200
      const run = (await api("GET", "/api/runs/fault-1", undefined, own)).json;
      expect(run.usage).toMatchObject({ llm_calls: 1, cost_nanousd: cost.toString() });
      expect((await api("POST", "/api/runs/fault-1/kill", {}, own)).status).toBe(200);
      expect((await api("POST", "/api/runs/fault-1/unkill", undefined, own)).status).toBe(200);
      const events = (await api("GET", "/api/limit-events?subject=fault-1", undefined, own)).json.events;
      expect(events.map((e: Json) => e.type).sort()).toEqual(["run_killed", "run_unkilled"]);
    } finally {
      await own.stop();
    }
  });

  it("a call its run's holds turn away leaves nothing behind: 20,000 of them grow the heap by under 0.5 MB", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const heap = () => {
      gc();
      return process.memoryUsage().heapUsed;
    };
    const now = await startTestGateway(mock.url, { runHoldWaitMs: 0, timeoutMs: 60_000 });
    const pool = new Pool(now.url, { connections: 16 });
    const holding = new AbortController();
    try {
      await api("PUT", "/api/agents/heap-bot", { max_cost_usd: "0.01" }, now);
      const headers = { "x-tollgate-agent-run-id": "heap-1", "x-tollgate-agent-type": "heap-bot" };
      // A stream past the ceiling by its hold alone, in flight throughout: every other call is turned away.
      const held = client({ ...headers, "x-mock-headers-delay-ms": "60000" }, now)
        .chat.completions.create(
          {
            model: "gpt-4.1-nano",
            max_tokens: 32768,
            stream: true,
            messages: [{ role: "user", content: "h" }],
          },
          { signal: holding.signal },
        )
        .catch(() => {});
      await sleep(100);
      const body = JSON.stringify({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "x" }] });
      const refuse = async (n: number) => {
        let left = n;
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (left-- > 0) {
              const r = await pool.request({
                path: "/v1/chat/completions",
                method: "POST",
                headers: { ...headers, "content-type": "application/json" },
                body,
              });
              await r.body.text();
              expect(r.statusCode).toBe(429);
            }
          }),
        );
      };
      // What the first thousands leave (the gateway's and the test's own warming up) is not measured.
      await refuse(5_000);
      const before = heap();
      await refuse(20_000);
      expect(heap() - before).toBeLessThan(500_000); // ~70 bytes each were kept (1.4 MB)
      holding.abort();
      await held;
    } finally {
      holding.abort();
      await pool.close();
      await now.stop();
    }
  }, 60_000);

  it("a gateway shutting down answers its waiting calls at once (429, Retry-After 1): none is sent upstream meanwhile, nor holds the stop", async () => {
    const leaving = await startTestGateway(mock.url);
    await api("PUT", "/api/agents/stop-bot", { max_cost_usd: "0.05" }, leaving);
    const headers = {
      "x-tollgate-agent-run-id": "stop-1",
      "x-tollgate-agent-type": "stop-bot",
      "x-test-case": "stop-1",
    };
    const slow = client({ ...headers, "x-mock-headers-delay-ms": "1500" }, leaving);
    // Four holds of ~$0.0133 fill the ceiling for 1.5 s; they end as the stop lets calls in flight finish.
    const first = Array.from({ length: 4 }, (_, i) =>
      okOrCode(
        slow.chat.completions.create({
          model: "o3-mini",
          max_completion_tokens: 3000,
          messages: [{ role: "user", content: `a${i}` }],
        }),
      ),
    );
    await sleep(150);
    const waiting = client(headers, leaving)
      .chat.completions.create({
        model: "o3-mini",
        max_completion_tokens: 3000,
        messages: [{ role: "user", content: "b" }],
      })
      .then(
        () => ({ outcome: "ok", at: Date.now() }),
        (e) => ({ outcome: e.code ?? e.name, retryAfter: e.headers?.get("retry-after"), at: Date.now() }),
      );
    await sleep(150);
    const stopAt = Date.now();
    const stopped = leaving.stop();
    const answer = await waiting;
    expect(answer).toMatchObject({ outcome: "rate_limited", retryAfter: "1" });
    expect(answer.at - stopAt).toBeLessThan(1000); // before the calls in flight end
    expect(await Promise.all(first)).toEqual(["ok", "ok", "ok", "ok"]);
    await stopped;
    expect(mock.requests.filter((r) => r.headers["x-test-case"] === "stop-1")).toHaveLength(4);
  });

  it("a waiting call whose admission is under way as the gateway stops is answered as the others are, not sent", async () => {
    const leaving = await startTestGateway(mock.url);
    await api("PUT", "/api/agents/late-bot", { max_cost_usd: "0.01" }, leaving);
    const headers = {
      "x-tollgate-agent-run-id": "late-1",
      "x-tollgate-agent-type": "late-bot",
      "x-test-case": "late-1",
    };
    const call = (delayMs: number) =>
      okOrCode(
        client({ ...headers, "x-mock-headers-delay-ms": String(delayMs) }, leaving).chat.completions.create({
          model: "gpt-4.1-nano",
          max_tokens: 32768, // ~$0.0131 held: past the ceiling by itself, so one call at a time
          messages: [{ role: "user", content: "l" }],
        }),
      );
    const first = call(300);
    await sleep(100);
    const waiting = call(0);
    // A limit store whose admissions take a while to answer (a remote one): the waiter's, once the first
    // call has settled, is answered only after the stop has begun.
    const limits = leaving.runtime.guard.store;
    const admit = limits.admit.bind(limits);
    let admitting = 0;
    limits.admit = async (req) => {
      const r = await admit(req);
      if (r.ok) {
        admitting++;
        await sleep(300);
      }
      return r;
    };
    expect(await first).toBe("ok");
    await vi.waitFor(() => expect(admitting).toBe(1));
    const stopped = leaving.stop();
    expect(await waiting).toBe("rate_limited");
    await stopped;
    expect(mock.requests.filter((r) => r.headers["x-test-case"] === "late-1")).toHaveLength(1);
    expect((await limits.run("default", "r:late-1"))?.usage.llm_calls).toBe(1); // nor counted
  });

  it("max_llm_calls: the call past the ceiling is refused before it reaches the provider", async () => {
    await api("PUT", "/api/agents/counter-bot", { max_llm_calls: 3 });
    const oa = client({
      "x-tollgate-agent-run-id": "count-1",
      "x-tollgate-agent-type": "counter-bot",
      "x-test-case": "count-1",
    });
    const call = () => nanoChat(oa);
    expect([await call(), await call(), await call(), await call(), await call()]).toEqual([
      "ok",
      "ok",
      "ok",
      "agent_run_killed",
      "agent_run_killed",
    ]);
    expect(mock.requests.filter((r) => r.headers["x-test-case"] === "count-1")).toHaveLength(3);
  });

  it("a call whose client leaves before it goes upstream is no LLM call of its run: abandoned calls do not kill it at max_llm_calls", async () => {
    const one = await startTestGateway(mock.url, { upstreamConnections: 1 });
    try {
      await api("PUT", "/api/agents/quitter-bot", { max_llm_calls: 4 }, one);
      const headers = {
        "x-tollgate-agent-run-id": "quitter-1",
        "x-tollgate-agent-type": "quitter-bot",
        "x-test-case": "quitter-1",
      };
      // The one upstream connection is busy for 400 ms: three calls admitted after it wait for it, and
      // their clients give up meanwhile.
      const busy = nanoChat(client({ ...headers, "x-mock-headers-delay-ms": "400" }, one));
      await sleep(100);
      const gone = new AbortController();
      const abandoned = Array.from({ length: 3 }, (_, i) =>
        client(headers, one)
          .chat.completions.create(
            { model: "gpt-4.1-nano", messages: [{ role: "user", content: `left ${i}` }] },
            { signal: gone.signal },
          )
          .catch((e) => e),
      );
      await sleep(100);
      gone.abort();
      for (const e of await Promise.all(abandoned)) expect(e).toBeInstanceOf(OpenAI.APIUserAbortError);
      expect(await busy).toBe("ok");
      // Two more calls fit under max_llm_calls 4: the run counts the two sent before them, not the three never sent.
      expect([await nanoChat(client(headers, one)), await nanoChat(client(headers, one))]).toEqual([
        "ok",
        "ok",
      ]);
      expect(mock.requests.filter((r) => r.headers["x-test-case"] === "quitter-1")).toHaveLength(3);
      expect((await api("GET", "/api/runs/quitter-1", undefined, one)).json).toMatchObject({
        state: "running",
        usage: { llm_calls: 3 },
      });
    } finally {
      await one.stop();
    }
  });

  it("a call admitted before its run's kill and unkill that is never sent takes back nothing from the run started over", async () => {
    const one = await startTestGateway(mock.url, { upstreamConnections: 1 });
    try {
      const headers = { "x-tollgate-agent-run-id": "quitter-2", "x-test-case": "quitter-2" };
      // The one upstream connection is busy for 500 ms (a call of no run): the run's calls wait for it.
      const busy = nanoChat(client({ "x-mock-headers-delay-ms": "500" }, one));
      await sleep(100);
      const gone = new AbortController();
      const abandoned = client(headers, one)
        .chat.completions.create(
          { model: "gpt-4.1-nano", messages: [{ role: "user", content: "old run" }] },
          { signal: gone.signal },
        )
        .catch((e) => e);
      await sleep(100);
      await api("POST", "/api/runs/quitter-2/kill", { reason: "stop" }, one);
      await api("POST", "/api/runs/quitter-2/unkill", undefined, one);
      const sent = nanoChat(client(headers, one), "new run");
      await sleep(100);
      gone.abort(); // admitted on the old run: its LLM call was counted there
      expect(await abandoned).toBeInstanceOf(OpenAI.APIUserAbortError);
      expect([await busy, await sent]).toEqual(["ok", "ok"]);
      expect(mock.requests.filter((r) => r.headers["x-test-case"] === "quitter-2")).toHaveLength(1);
      // The run started over counts the one call it sent (it counted 0: the abandoned call took it back).
      expect((await api("GET", "/api/runs/quitter-2", undefined, one)).json.usage.llm_calls).toBe(1);
    } finally {
      await one.stop();
    }
  });

  it("a call whose client leaves before it goes upstream takes back its request count, and its run's span depth", async () => {
    const one = await startTestGateway(mock.url, { upstreamConnections: 1 });
    try {
      await api(
        "POST",
        "/api/rate-limits",
        { id: "quit-rpm", scope: { feature: "quit" }, requests_per_min: 2 },
        one,
      );
      const headers = { "x-tollgate-feature": "quit", "x-test-case": "quitter-3" };
      const ofRun = { ...headers, "x-tollgate-agent-run-id": "quitter-3" };
      // The one upstream connection is busy for 400 ms (a call of no limit): two calls admitted after it, one
      // of the run at depth 5 and one of no run, wait for it, and their clients give up meanwhile.
      const busy = nanoChat(client({ "x-mock-headers-delay-ms": "400" }, one));
      await sleep(100);
      const gone = new AbortController();
      const abandoned = [{ ...ofRun, "x-tollgate-span-depth": "5" }, headers].map((h) =>
        client(h, one)
          .chat.completions.create(
            { model: "gpt-4.1-nano", messages: [{ role: "user", content: "left" }] },
            { signal: gone.signal },
          )
          .catch((e) => e),
      );
      await sleep(100);
      gone.abort();
      for (const e of await Promise.all(abandoned)) expect(e).toBeInstanceOf(OpenAI.APIUserAbortError);
      expect(await busy).toBe("ok");
      // Two calls a minute: the two sent now, not the two never sent.
      expect([await nanoChat(client(ofRun, one)), await nanoChat(client(ofRun, one))]).toEqual(["ok", "ok"]);
      expect(mock.requests.filter((r) => r.headers["x-test-case"] === "quitter-3")).toHaveLength(2);
      expect((await api("GET", "/api/runs/quitter-3", undefined, one)).json.usage).toMatchObject({
        llm_calls: 2,
        span_depth: 1,
      });
    } finally {
      await one.stop();
    }
  });

  it("a background response: polls pass any budget (they spend nothing); its cost counts once, as one LLM call", async () => {
    await api("POST", "/api/budgets", {
      id: "bg-strict",
      scope: { feature: "bg" },
      window: "day",
      limit_usd: "10",
      unpriced: "block",
    });
    const headers = {
      "x-tollgate-feature": "bg",
      "x-tollgate-agent-run-id": "bg-run-1",
      "x-tollgate-agent-type": "researcher",
      "x-mock-case": "bg-run-1",
    };
    const oa = client(headers);
    const submitted = await oa.responses.create({ model: "gpt-5", input: "research", background: true });
    expect(submitted.status).toBe("queued");
    // While it runs, its hold counts against the budget as any call in flight does.
    const running = await api("GET", "/api/budgets/bg-strict");
    expect(running.json).toMatchObject({ spend_usd: "0.00" });
    expect(running.json.reserved_usd).not.toBe("0.00");
    // Polls name no model: an unpriced-blocking budget must not refuse them.
    expect((await oa.responses.retrieve(submitted.id)).status).toBe("in_progress");
    const done = await oa.responses.retrieve(submitted.id);
    expect(done.status).toBe("completed");
    await oa.responses.retrieve(submitted.id);
    // The finished response's record and charge land after its poll's reply.
    const finished = await vi.waitFor(
      async () => {
        const [rec] = (await gatewayRecords(gw.runtime)).filter(
          (r) => r.request_id === submitted.id && r.kind === "llm",
        );
        expect(rec).toBeDefined();
        return rec;
      },
      { timeout: 5_000, interval: 20 },
    );
    expect(finished!.cost_nanousd).toBeGreaterThan(0n);
    await sleep(50);
    const run = await api("GET", "/api/runs/bg-run-1");
    expect(run.json.usage).toMatchObject({ llm_calls: 1, cost_nanousd: finished!.cost_nanousd.toString() });
    const budget = await api("GET", "/api/budgets/bg-strict");
    expect(budget.json).toMatchObject({ spend_usd: formatUsd(finished!.cost_nanousd), reserved_usd: "0.00" });
  });

  it("background responses still running count against a hard cap: submissions past it are refused", async () => {
    await api("POST", "/api/budgets", {
      id: "bg-cap",
      scope: { feature: "bg-cap" },
      window: "day",
      limit_usd: "1.00",
    });
    const oa = client({ "x-tollgate-feature": "bg-cap", "x-mock-case": "bg-cap" });
    // Each holds its worst case ($0.40: 40,000 output tokens of gpt-5 at $10 per million, plus its input).
    const submit = () =>
      oa.responses.create({ model: "gpt-5", input: "go", background: true, max_output_tokens: 40_000 }).then(
        (r) => r.status,
        (e) => e.code,
      );
    expect([await submit(), await submit(), await submit()]).toEqual(["queued", "queued", "budget_exceeded"]);
  });

  describe("a background response's stream", () => {
    /** Its records (by response id and feature), once there are `n`, and a moment for any more. */
    const recordsOf = async (id: string, feature: string, n: number) => {
      const find = async () =>
        (await gatewayRecords(gw.runtime)).filter((r) => r.request_id === id && r.feature === feature);
      await vi.waitFor(async () => expect((await find()).length).toBeGreaterThanOrEqual(n), {
        timeout: 5_000,
        interval: 20,
      });
      await sleep(150);
      return find();
    };
    const budgetOf = async (id: string) => (await api("GET", `/api/budgets/${id}`)).json;
    // The mock's responses keep their fixture's id, and this process remembers the ids it recorded:
    // each test streams its own fixture.
    const start = async (feature: string, fixture: string) => {
      await api("POST", "/api/budgets", { id: feature, scope: { feature }, window: "day", limit_usd: "10" });
      const oa = client({
        "x-tollgate-feature": feature,
        "x-mock-case": feature,
        "x-mock-chunk-delay-ms": "20",
        "x-mock-fixture": fixture,
      });
      const stream = await oa.responses.create({
        model: "gpt-5",
        input: "go",
        stream: true,
        background: true,
      });
      const events = stream[Symbol.asyncIterator]();
      const first = (await events.next()).value as { response: { id: string } };
      return { oa, events, id: first.response.id };
    };

    it("still relayed when a poll finds the response finished: recorded and charged once, by the poll", async () => {
      const { oa, events, id } = await start("bg-race", "openai/responses.stream.gpt-5.reasoning.sse");
      expect((await oa.responses.retrieve(id)).status).toBe("completed");
      while (!(await events.next()).done) {}
      const records = await recordsOf(id, "bg-race", 2);
      const llm = records.filter((r) => r.kind === "llm");
      expect(llm).toHaveLength(1);
      expect(llm[0]).toMatchObject({ stream: false, output_tokens: 469 });
      // The stream itself: a call, not the response's cost a second time.
      expect(records.filter((r) => r.kind === "other")).toMatchObject([
        { stream: true, status: "ok", cost_nanousd: 0n },
      ]);
      expect(await budgetOf("bg-race")).toMatchObject({
        spend_nanousd: llm[0]!.cost_nanousd.toString(),
        reserved_usd: "0.00",
      });
    });

    it("cut short: recorded as its submission is (the response runs on); the poll that finds it finished bills it in full", async () => {
      const rel = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
      const { oa, events, id } = await start("bg-cut", rel);
      await events.return?.(); // the app stops reading: the gateway's client leaves
      const [cut] = await recordsOf(id, "bg-cut", 1);
      expect(cut).toMatchObject({ kind: "other", stream: true, status: "error", cost_nanousd: 0n });
      expect(cut!.cost_source).not.toBe("estimated");
      expect((await budgetOf("bg-cut")).reserved_usd).not.toBe("0.00"); // held while it runs
      expect((await oa.responses.retrieve(id)).status).toBe("completed");
      const llm = (await recordsOf(id, "bg-cut", 2)).filter((r) => r.kind === "llm");
      expect(llm).toHaveLength(1);
      // The whole response: its tokens and its one web search, as the capture's response.completed reports them.
      expect(llm[0]).toMatchObject({
        output_tokens: 79,
        web_search_requests: 1,
        status: "ok",
        stream: false,
      });
      expect(await budgetOf("bg-cut")).toMatchObject({
        spend_nanousd: llm[0]!.cost_nanousd.toString(),
        reserved_usd: "0.00",
      });
    });
  });

  it("a killed run may still read and cancel through the gateway, but starts no new pass-through work", async () => {
    await api("POST", "/api/runs/pt-killed/kill", { reason: "stop" });
    const send = (method: string, path: string, body?: string) =>
      fetch(`${gw.url}${path}`, {
        method,
        headers: {
          authorization: "Bearer sk-test",
          "x-tollgate-agent-run-id": "pt-killed",
          "content-type": "application/json",
        },
        body,
      });
    const batch = await send(
      "POST",
      "/v1/batches",
      JSON.stringify({ input_file_id: "file-1", endpoint: "/v1/chat/completions" }),
    );
    expect(batch.status).toBe(429);
    expect(((await batch.json()) as Json).error.code).toBe("agent_run_killed");
    // "cancel" in the query string is no cancel.
    expect(
      (await send("POST", "/v1/batches?x=/cancel", JSON.stringify({ input_file_id: "file-1" }))).status,
    ).toBe(429);
    expect((await send("GET", "/v1/models")).status).toBe(200);
    expect((await send("POST", "/v1/responses/resp_x/cancel")).status).toBe(404); // the mock's answer: not refused
  });

  it("manual kill and unkill through the API", async () => {
    const oa = client({ "x-tollgate-agent-run-id": "manual-1" });
    const call = () =>
      oa.chat.completions.create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "x" }] }).then(
        () => "ok",
        (e) => e,
      );
    expect(await call()).toBe("ok");
    expect((await api("POST", "/api/runs/manual-1/kill", { reason: "looping on refunds" })).json.state).toBe(
      "killed",
    );
    const e = (await call()) as Json;
    expect(e.code).toBe("agent_run_killed");
    expect(e.error.agent_run).toMatchObject({ ceiling: "manual", value: "looping on refunds" });
    expect((await api("POST", "/api/runs/manual-1/unkill")).json).toMatchObject({
      state: "running",
      was_killed: true,
    });
    expect(await call()).toBe("ok");
  });

  it("a call in flight at its run's kill and unkill is the old run's: the run started over counts nothing of it, as a rebuild", async () => {
    const headers = { "x-tollgate-agent-run-id": "inflight-unkill-1" };
    const slow = client({ ...headers, "x-mock-headers-delay-ms": "400" });
    const pending = slow.chat.completions.create({
      model: "gpt-4.1-nano",
      messages: [{ role: "user", content: "x" }],
    });
    await sleep(150);
    await api("POST", "/api/runs/inflight-unkill-1/kill", { reason: "stop" });
    await api("POST", "/api/runs/inflight-unkill-1/unkill");
    await pending;
    const run = await api("GET", "/api/runs/inflight-unkill-1");
    expect(run.json.usage).toMatchObject({ cost_nanousd: "0", llm_calls: 0 });
  });
});

/** Stops `first` and runs `check` against a gateway restarted on its data dir (which the caller removes). */
async function afterRestart(first: typeof gw, check: (second: typeof gw) => Promise<void>): Promise<void> {
  await first.stop();
  const second = await startTestGateway(mock.url, {}, { dataDir: first.dataDir, keepDataDir: true });
  try {
    await check(second);
  } finally {
    await second.stop();
  }
}

/** The llm records of a background response, in a gateway's store. */
const llmRecordsOf = async (g: typeof gw, responseId: string) =>
  (await gatewayRecords(g.runtime)).filter((r) => r.request_id === responseId && r.kind === "llm");

describe("restart", () => {
  it("a background response polled again after a restart is not charged again", async () => {
    const first = await startTestGateway(mock.url, {}, { keepDataDir: true });
    const dataDir = first.dataDir;
    const spend = async (base: typeof gw) =>
      (await api("GET", "/api/budgets/bg-restart", undefined, base)).json.spend_usd;
    try {
      await api(
        "POST",
        "/api/budgets",
        { id: "bg-restart", scope: { feature: "bg-r" }, window: "day", limit_usd: "5" },
        first,
      );
      const headers = { "x-tollgate-feature": "bg-r", "x-mock-case": "bg-restart" };
      const submitted = await client(headers, first).responses.create({
        model: "gpt-5",
        input: "go",
        background: true,
      });
      for (let i = 0; i < 2; i++) await client(headers, first).responses.retrieve(submitted.id);
      const charged = await vi.waitFor(
        async () => {
          const s = await spend(first);
          expect(s).not.toBe("0.00");
          return s;
        },
        { timeout: 5_000, interval: 20 },
      );
      await afterRestart(first, async (second) => {
        expect(await spend(second)).toBe(charged); // rebuilt from the stored record
        expect((await client(headers, second).responses.retrieve(submitted.id)).status).toBe("completed");
        await sleep(300);
        expect(await spend(second)).toBe(charged);
        expect(await llmRecordsOf(second, submitted.id)).toHaveLength(1);
      });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("a background response found finished just before a stop is recorded: the stop waits for it", async () => {
    const first = await startTestGateway(mock.url, {}, { keepDataDir: true });
    try {
      const oa = client({ "x-mock-case": "bg-stop" }, first);
      const submitted = await oa.responses.create({ model: "gpt-5", input: "go", background: true });
      await oa.responses.retrieve(submitted.id); // in_progress
      expect((await oa.responses.retrieve(submitted.id)).status).toBe("completed");
      // Stopped at once: its record is still on its way (a store lookup, a claim).
      await afterRestart(first, async (second) => {
        expect(await llmRecordsOf(second, submitted.id)).toHaveLength(1);
      });
    } finally {
      rmSync(first.dataDir, { recursive: true, force: true });
    }
  });

  it("the current window's spend, and killed runs, survive a restart of the embedded server", async () => {
    const first = await startTestGateway(mock.url, {}, { keepDataDir: true });
    const dataDir = first.dataDir;
    try {
      await api(
        "POST",
        "/api/budgets",
        { id: "persist", scope: { user_id: "p1" }, window: "day", limit_usd: "0.12" },
        first,
      );
      const oa = client({ "x-tollgate-user-id": "p1", "x-mock-fixture": CACHE_WRITE }, first);
      const call = () =>
        okOrCode(
          oa.chat.completions.create({
            model: "gpt-5.6-sol",
            max_completion_tokens: 64,
            messages: [{ role: "user", content: LONG_PROMPT }],
          }),
        );
      expect([await call(), await call()]).toEqual(["ok", "ok"]);
      await api("POST", "/api/runs/persist-run/kill", {}, first);
      const before = (await api("GET", "/api/budgets/persist", undefined, first)).json;
      expect(before.spend_usd).toBe("0.040344");
      await afterRestart(first, async (second) => {
        const after = (await api("GET", "/api/budgets/persist", undefined, second)).json;
        expect(after).toMatchObject({ spend_usd: "0.040344", state: "ok" });
        const oa2 = client({ "x-tollgate-user-id": "p1", "x-mock-fixture": CACHE_WRITE }, second);
        const third = await oa2.chat.completions
          .create({
            model: "gpt-5.6-sol",
            max_completion_tokens: 64,
            messages: [{ role: "user", content: LONG_PROMPT }],
          })
          .catch((e) => e);
        expect(third.code).toBe("budget_exceeded"); // $0.0403 spent + $0.0817 worst case > $0.12
        const killed = await client({ "x-tollgate-agent-run-id": "persist-run" }, second)
          .chat.completions.create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "x" }] })
          .catch((e) => e);
        expect(killed.code).toBe("agent_run_killed");
      });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
