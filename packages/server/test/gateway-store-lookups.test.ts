// A finished background response is looked up in the store before it is recorded (recorded elsewhere
// already?). A store that has fallen behind answers those reads late or never: they must not pile up in the
// gateway without bound, one per response finished, while traffic goes on.
import { rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { CallRecord } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MAX_LOOKUPS } from "../src/gateway/proxy.js";
import { adminRequest, startTestGateway } from "./helpers.js";
import { FX, fixture } from "./mock-upstream.js";

const RESPONSE = JSON.parse(fixture(FX.responses)) as { model: string };
/** An upstream whose every GET /v1/responses/{id} is that response, finished (polled from another replica). */
const upstream = createServer((req, res) => {
  const id = /^\/v1\/responses\/([^/?]+)$/.exec(req.url ?? "")?.[1];
  const body = JSON.stringify({ ...RESPONSE, id, background: true });
  res.writeHead(id ? 200 : 404, { "content-type": "application/json" }).end(body);
});
const upstreamUrl = () => `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
beforeAll(async () => {
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  gw = await startTestGateway(upstreamUrl());
});
afterAll(async () => {
  await gw?.stop();
  await new Promise((resolve) => upstream.close(resolve));
});

const poll = async (id: string, through = gw, headers: Record<string, string> = {}) => {
  const r = await fetch(`${through.url}/v1/responses/${id}`, {
    headers: { authorization: "Bearer sk-test", ...headers },
  });
  expect(r.status).toBe(200);
  await r.arrayBuffer();
};

describe("gateway: store lookups of finished background responses", () => {
  it("at most MAX_LOOKUPS are with a store that does not answer; the others wait their turn, up to the lookup's timeout", async () => {
    const { recorder, store } = gw.runtime;
    /** The lookups the store has not answered: each resolves with what it found. */
    const unanswered: ((found: CallRecord[]) => void)[] = [];
    const { query } = store;
    store.query = () => new Promise((resolve) => unanswered.push(resolve));
    /** The finished responses recorded (a poll's own record names no model). */
    const finished = async () => {
      await recorder.flush();
      return store.count({ workspaceId: "default", where: { model: RESPONSE.model } });
    };

    const n = 2 * MAX_LOOKUPS;
    for (let i = 0; i < n; i++) await poll(`resp_${i}`);
    // Past the lookups' timeout every response is recorded (before, each had a lookup of its own, which stayed
    // with the store once timed out): no read more was started while the first are still with the store.
    await vi.waitFor(async () => expect(await finished()).toBe(n), { timeout: 10_000, interval: 50 });
    expect(unanswered).toHaveLength(MAX_LOOKUPS);

    // The store answers, late: none waits any more (each left at its timeout), and lookups are made again.
    for (const answer of unanswered.splice(0)) answer([]);
    await poll("resp_after");
    await vi.waitFor(() => expect(unanswered).toHaveLength(1), { timeout: 4_000, interval: 20 });
    unanswered[0]!([]);
    store.query = query;
  });

  it("a response recorded before a restart, polled again while MAX_LOOKUPS lookups are with the store, is not billed again", async () => {
    const first = await startTestGateway(upstreamUrl(), {}, { keepDataDir: true });
    const polled = { "x-tollgate-feature": "polled" };
    let again: typeof first | undefined;
    let stopped = false;
    try {
      await adminRequest(first, "POST", "/api/budgets", {
        id: "polled",
        scope: { feature: "polled" },
        window: "lifetime",
        limit_usd: "10",
      });
      await poll("resp_once", first, polled);
      const spend = async (of: typeof first) =>
        ((await adminRequest(of, "GET", "/api/budgets/polled")).json as { spend_nanousd: string })
          .spend_nanousd;
      await vi.waitFor(async () => expect(BigInt(await spend(first))).toBeGreaterThan(0n), {
        timeout: 4_000,
        interval: 20,
      });
      const billed = await spend(first);
      await first.stop();
      stopped = true;

      // Restarted: the response's record is in the store (and its cost in the rebuilt budget), not in memory.
      again = await startTestGateway(upstreamUrl(), {}, { dataDir: first.dataDir });
      expect(await spend(again)).toBe(billed);
      const { store } = again.runtime;
      /** What the store holds of resp_once: its record, from before the restart. */
      const recorded = await store.query({ workspaceId: "default", where: { request_id: "resp_once" } });
      expect(recorded.map((r) => r.kind)).toContain("llm");
      /** Lookups of other responses, held by a store that is busy: each answers once called. */
      const busy: (() => void)[] = [];
      let lookedUp = false;
      store.query = async (filter) => {
        if (filter.where?.request_id !== "resp_once") {
          await new Promise<void>((resolve) => busy.push(resolve));
          return [];
        }
        lookedUp = true;
        return recorded;
      };
      /** The budget charges of a record of resp_once made here (none: it was found recorded). */
      const observe = vi.spyOn(again.runtime.guard, "observe");
      const chargesAgain = () =>
        observe.mock.calls.flatMap(([records], i) =>
          records.some((r) => r.request_id === "resp_once") ? [observe.mock.results[i]!.value] : [],
        );
      for (let i = 0; i < MAX_LOOKUPS; i++) await poll(`resp_busy_${i}`, again);
      await vi.waitFor(() => expect(busy).toHaveLength(MAX_LOOKUPS), { timeout: 4_000, interval: 20 });

      // Polled again (an app retrieving it once more): the store, busy, answers its lookup a moment later.
      await poll("resp_once", again, polled);
      setTimeout(() => {
        for (const answer of busy.splice(0)) answer();
      }, 200);
      await vi.waitFor(() => expect(lookedUp || chargesAgain().length > 0).toBe(true), {
        timeout: 4_000,
        interval: 20,
      });
      await Promise.all(chargesAgain());
      expect(await spend(again)).toBe(billed); // not twice
      expect(chargesAgain()).toHaveLength(0);
    } finally {
      if (!stopped) await first.stop();
      await again?.stop();
      rmSync(first.dataDir, { recursive: true, force: true }); // kept for the restart
    }
  });
});
