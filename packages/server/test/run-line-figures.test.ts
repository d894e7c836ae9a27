// The figures of a 429 told to a call out of time in its agent run's line (rate_limited, `agent_run`): each
// describes the call it is told to, on either limit store. `kept` is the room one call had to leave for an
// earlier one: another call in the line, refused for the run's holds, was not.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminRequest, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { startRedis, type TestRedis } from "./redis-server.js";

let mock: MockUpstream;
let redis: TestRedis;

beforeAll(async () => {
  mock = await startMockUpstream();
  redis = await startRedis();
});
afterAll(async () => {
  await mock?.close();
  await redis?.stop();
});

/** A refusal's `agent_run` figures, as its body tells them. */
interface RunFigures {
  ceiling: string;
  used: string;
  held: string;
  limit: string;
  requested: string;
  kept?: string;
}

describe.each([
  ["memory", () => null],
  ["Redis", () => redis.url],
])("on the %s limit store", (store, redisUrl) => {
  it("a call out of time behind others in its run's line is told its own figures, not the room a call that came after it had to leave", async () => {
    const gw = await startTestGateway(mock.url, { runHoldWaitMs: 1500 }, { redisUrl: redisUrl() });
    // A run and messages of each store's own: the mock answers 429 only the first time it sees a request.
    const runId = `figures-${store}`;
    try {
      await adminRequest(gw, "PUT", "/api/agents/figures-bot", { max_cost_usd: "0.01" });
      const { guard } = gw.runtime;
      let releases = 0;
      const releaseWaiters = new Map<number, () => void>();
      const released = (n: number) =>
        new Promise<void>((resolve) => {
          releaseWaiters.set(n, resolve);
        });
      guard.onRunReleased((_, id) => {
        if (id === runId) releaseWaiters.get(++releases)?.();
      });
      // A refusal for the run's holds, told to whoever waits for that call's (its message's) to be made.
      const refused = new Map<string, () => void>();
      const admit = guard.admit.bind(guard);
      guard.admit = async (ctx) => {
        const a = await admit(ctx);
        const messages = ctx.body?.messages as { content: string }[] | undefined;
        if (!a.ok && a.inFlight) refused.get(messages?.[0]?.content ?? "")?.();
        return a;
      };
      const turnedAway = (seq: string) =>
        new Promise<void>((resolve) => {
          refused.set(`${runId} ${seq}`, resolve);
        });
      const call = (seq: string, maxTokens: number, more: Record<string, string> = {}) =>
        new OpenAI({
          apiKey: "sk-test",
          baseURL: `${gw.url}/v1`,
          maxRetries: 0,
          defaultHeaders: {
            "x-tollgate-agent-run-id": runId,
            "x-tollgate-agent-type": "figures-bot",
            "x-seq": seq,
            ...more,
          },
        }).chat.completions.create({
          model: "gpt-4.1-nano",
          max_tokens: maxTokens, // 32768: ~$0.0131 held, past the $0.01 ceiling alone; 100: ~$0.00004
          messages: [{ role: "user", content: `${runId} ${seq}` }],
        });
      const errorOf = (p: Promise<unknown>) =>
        p.then(
          () => null,
          (e) => e as InstanceType<typeof OpenAI.RateLimitError> & { error: { agent_run: RunFigures } },
        );

      const firstReleased = released(1);
      const wideReleased = released(2);
      // The first, holding little, is answered 429 after 300 ms asking for 3 s: its gateway retry keeps the
      // head of the line through that backoff, past every wait below.
      const first = errorOf(
        call("first", 100, {
          "x-tollgate-retries": "1",
          "x-mock-scenario": "rate-limit-once",
          "x-mock-retry-after": "3",
          "x-mock-headers-delay-ms": "300",
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
      // The wide one comes while the first is in flight and finds room: it holds the rest for 500 ms.
      const wide = errorOf(call("wide", 32768, { "x-mock-headers-delay-ms": "500" }));
      await firstReleased; // the first backs off, at the head of the line
      // The small one finds the run full (the wide one's hold): refused for the holds, it waits behind the first.
      const smallTurnedAway = turnedAway("small");
      const small = errorOf(call("small", 100));
      await smallTurnedAway;
      await wideReleased; // nothing is held now
      // The big one finds room for itself but none left for the first's retry: refused for the room it had
      // to leave (`kept`), it waits behind the small one.
      const bigTurnedAway = turnedAway("big");
      const big = errorOf(call("big", 32768));
      await bigTurnedAway;
      expect(await wide).toBeNull();

      // Both are out of time before the first's retry goes, neither having tried since it joined.
      const [smallError, bigError] = await Promise.all([small, big]);
      const truthful = (e: typeof smallError) => {
        expect(e).toBeInstanceOf(OpenAI.RateLimitError);
        expect(e!.code).toBe("rate_limited");
        const f = e!.error.agent_run;
        const over = BigInt(f.used) + BigInt(f.held);
        // With `kept`: this call's hold would fill what is left; without: the holds fill it already.
        if (f.kept === undefined) expect(over >= BigInt(f.limit)).toBe(true);
        else expect(over + BigInt(f.requested) >= BigInt(f.limit)).toBe(true);
        return f;
      };
      const smallFigures = truthful(smallError);
      const bigFigures = truthful(bigError);
      // The small one was refused for the wide one's hold, not for room to leave: it is told no `kept`…
      expect(smallFigures).not.toHaveProperty("kept");
      expect(smallFigures).toMatchObject({ ceiling: "cost_nanousd", used: "0" });
      expect(BigInt(smallFigures.requested)).toBeLessThan(100_000n); // its own ~$0.00004
      expect(smallError!.message).toContain("reach its cost_nanousd ceiling $0.01");
      expect(smallError!.message).not.toContain("earlier call");
      // …while the big one is told the room it had to leave for the first: the first's ~$0.00004.
      expect(bigFigures).toMatchObject({ ceiling: "cost_nanousd", held: "0" });
      expect(BigInt(bigFigures.kept!)).toBeLessThan(100_000n);
      expect(BigInt(bigFigures.requested)).toBeGreaterThan(10_000_000n); // its own ~$0.0131
      expect(bigError!.message).toContain("for an earlier call of the run waiting to go");
      expect(await first).toBeNull(); // its retry went, once the others had left
    } finally {
      await gw.stop();
    }
  });
});
