// A finished background response is looked up in the store before it is recorded (recorded elsewhere
// already?). A store that has fallen behind answers those reads late or never: they must not pile up in the
// gateway without bound, one per response finished, while traffic goes on.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { CallRecord } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MAX_LOOKUPS } from "../src/gateway/proxy.js";
import { startTestGateway } from "./helpers.js";
import { FX, fixture } from "./mock-upstream.js";

const RESPONSE = JSON.parse(fixture(FX.responses)) as { model: string };
/** An upstream whose every GET /v1/responses/{id} is that response, finished (polled from another replica). */
const upstream = createServer((req, res) => {
  const id = /^\/v1\/responses\/([^/?]+)$/.exec(req.url ?? "")?.[1];
  const body = JSON.stringify({ ...RESPONSE, id, background: true });
  res.writeHead(id ? 200 : 404, { "content-type": "application/json" }).end(body);
});
let gw: Awaited<ReturnType<typeof startTestGateway>>;
beforeAll(async () => {
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  gw = await startTestGateway(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
});
afterAll(async () => {
  await gw?.stop();
  await new Promise((resolve) => upstream.close(resolve));
});

const poll = async (id: string) => {
  const r = await fetch(`${gw.url}/v1/responses/${id}`, { headers: { authorization: "Bearer sk-test" } });
  expect(r.status).toBe(200);
  await r.arrayBuffer();
};

describe("gateway: store lookups of finished background responses", () => {
  it("at most MAX_LOOKUPS wait for a store that does not answer; the others are recorded at once", async () => {
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

    const n = 3 * MAX_LOOKUPS;
    for (let i = 0; i < n; i++) await poll(`resp_${i}`);
    // Those past the first MAX_LOOKUPS are recorded without waiting (before, each waited for a lookup of
    // its own, that timed out); the first still wait for the store.
    await vi.waitFor(async () => expect(await finished()).toBeGreaterThanOrEqual(n - MAX_LOOKUPS), {
      timeout: 10_000,
      interval: 20,
    });
    expect(unanswered).toHaveLength(MAX_LOOKUPS);

    // The store answers (nothing recorded elsewhere): those are recorded, and lookups are made again.
    for (const answer of unanswered.splice(0)) answer([]);
    await vi.waitFor(async () => expect(await finished()).toBe(n), { timeout: 4_000, interval: 20 });
    await poll("resp_after");
    await vi.waitFor(() => expect(unanswered).toHaveLength(1), { timeout: 4_000, interval: 20 });
    unanswered[0]!([]);
    store.query = query;
  });
});
