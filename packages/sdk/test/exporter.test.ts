// The batching exporter against a real Tollgate server: batching, retries through outages and
// ambiguous failures (stored exactly once), the bounded queue, and that nothing ever throws into the app.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CallRecordInput, uuidv7 } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer } from "../../server/src/serve.js";
import { createKey, startTestGateway } from "../../server/test/helpers.js";
import { type MockUpstream, startMockUpstream } from "../../server/test/mock-upstream.js";
import { Exporter, withAttribution, wrapOpenAI } from "../src/index.js";

let gw: Awaited<ReturnType<typeof startTestGateway>>;
let mock: MockUpstream;
let key: string;

beforeAll(async () => {
  mock = await startMockUpstream({ chunkDelayMs: 0 });
  gw = await startTestGateway(mock.url);
  key = (await createKey(gw.runtime.app, gw.runtime.rootToken, "default", "ingest")).json.key;
});
afterAll(async () => {
  await gw?.stop();
  await mock?.close();
});

let seq = 0;
/** A distinct feature per test, so each counts only its own records. */
const newFeature = () => `exp-${++seq}-${Date.now()}`;
const record = (feature: string, extra: Partial<CallRecordInput> = {}): CallRecordInput => ({
  event_id: uuidv7(),
  ts_start: Date.now(),
  provider: "openai",
  model: "gpt-4o-mini",
  input_uncached_tokens: 10,
  output_tokens: 2,
  feature,
  ...extra,
});
const stored = (runtime: typeof gw.runtime, feature: string) =>
  runtime.store.query({ workspaceId: "default", where: { feature }, limit: 100_000 });

/** Counts the batches the exporter sends (and their sizes) on the way to the real fetch. */
function countingFetch(sizes: number[]): typeof fetch {
  return (url, init) => {
    sizes.push((JSON.parse(String(init?.body)) as unknown[]).length);
    return fetch(url, init);
  };
}

/** A proxy in front of the server that misbehaves as `fault(n)` says for the n-th request (from 1). */
async function faultyProxy(
  target: string,
  fault: (n: number) => "ok" | "503" | "drop-after-store",
): Promise<{ url: string; close: () => Promise<void> }> {
  let n = 0;
  const server = createServer((req, res) => {
    const kind = fault(++n);
    if (kind === "503") {
      req.resume();
      res.writeHead(503, { "content-type": "application/json", "retry-after": "0" });
      res.end('{"error":{"type":"api_error","code":"unavailable","message":"down"}}');
      return;
    }
    const up = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (upRes) => {
      if (kind === "drop-after-store") {
        // The server stored the batch; the client never hears so, and must resend it.
        upRes.resume();
        upRes.on("end", () => res.socket?.destroy());
        return;
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe("Exporter", () => {
  it("batches by size, and sends a partial batch after flushIntervalMs", async () => {
    const sizes: number[] = [];
    const feature = newFeature();
    const ex = new Exporter({
      url: gw.url,
      apiKey: key,
      maxBatch: 100,
      flushIntervalMs: 50,
      fetch: countingFetch(sizes),
    });
    for (let i = 0; i < 250; i++) ex.export(record(feature));
    await expect.poll(() => ex.stats.queued, { timeout: 5000 }).toBe(0);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(250);
    expect(Math.max(...sizes)).toBe(100);
    expect(await stored(gw.runtime, feature)).toHaveLength(250);
    expect(ex.stats).toMatchObject({ delivered: 250, rejected: 0, dropped: 0 });
  });

  it("retries 5xx with backoff, and a batch stored but never acknowledged is stored once", async () => {
    const feature = newFeature();
    const proxy = await faultyProxy(gw.url, (n) => (n <= 2 ? "503" : n <= 4 ? "drop-after-store" : "ok"));
    const warnings: string[] = [];
    const ex = new Exporter({
      url: proxy.url,
      apiKey: key,
      maxBatch: 50,
      retryDelayMs: 5,
      onWarning: (w) => warnings.push(w),
    });
    const sent = Array.from({ length: 120 }, () => record(feature));
    for (const r of sent) ex.export(r);
    expect(await ex.flush(10_000)).toBe(true);
    await proxy.close();
    const rows = await stored(gw.runtime, feature);
    expect(rows.map((r) => r.event_id).sort()).toEqual(sent.map((r) => r.event_id).sort());
    expect(ex.stats).toMatchObject({ delivered: 120, queued: 0, dropped: 0 });
    expect(ex.stats.retries).toBeGreaterThanOrEqual(4);
    expect(warnings[0]).toMatch(/503|unreachable|fetch failed|socket/i);
  });

  it("honours Retry-After as an HTTP date as in seconds, each bounded by maxRetryDelayMs", async () => {
    const feature = newFeature();
    // HTTP dates have whole seconds: 1.5 s ahead is a wait of 0.5 to 1.5 s.
    const asked = [
      () => new Date(Date.now() + 1500).toUTCString(),
      () => "Wed, 21 Oct 2099 07:28:00 GMT",
      () => "3600",
    ];
    const times: number[] = [];
    const ex = new Exporter({
      url: gw.url,
      apiKey: key,
      flushIntervalMs: 1,
      retryDelayMs: 5, // its own backoff: a few ms
      maxRetryDelayMs: 3000, // well clear of the date's wait, however late a loaded machine's timers fire
      fetch: (url, init) => {
        times.push(Date.now());
        const after = asked.shift();
        if (after === undefined) return fetch(url, init);
        return Promise.resolve(new Response("{}", { status: 429, headers: { "retry-after": after() } }));
      },
    });
    ex.export(record(feature));
    await expect.poll(() => ex.stats.delivered, { timeout: 10_000 }).toBe(1);
    const waits = times.slice(1).map((t, i) => t - times[i]!);
    expect(waits[0]).toBeGreaterThanOrEqual(400); // the date
    expect(waits[0]).toBeLessThan(2900);
    for (const bounded of waits.slice(1, 3)) {
      expect(bounded).toBeGreaterThanOrEqual(2990); // asked for years, or an hour: maxRetryDelayMs
      expect(bounded).toBeLessThan(4500);
    }
    await ex.shutdown(100);
  });

  it("records the server refuses are counted and warned with the field and reason, never retried forever", async () => {
    const feature = newFeature();
    const warnings: string[] = [];
    const ex = new Exporter({ url: gw.url, apiKey: key, onWarning: (w) => warnings.push(w) });
    ex.export(record(feature));
    ex.export(record(feature, { output_tokens: -1 }));
    expect(await ex.flush()).toBe(true);
    expect(ex.stats).toMatchObject({ delivered: 1, rejected: 1 });
    expect(warnings.join("\n")).toMatch(/1 call records refused.*output_tokens: must not be negative/);
    expect(await stored(gw.runtime, feature)).toHaveLength(1);
  });

  it("memory is bounded: past maxQueue the oldest go, counted, with one warning per thousand", async () => {
    const warnings: string[] = [];
    const ex = new Exporter({
      url: "http://127.0.0.1:9",
      maxQueue: 1000,
      maxBatch: 100,
      retryDelayMs: 60_000,
      onWarning: (w) => warnings.push(w),
    });
    for (let i = 0; i < 2500; i++) ex.export(record("never"));
    // 1,000 queued + the batch of 100 in flight (never dropped: it may already be stored) are kept
    expect(ex.stats).toMatchObject({ queued: 1100, dropped: 1400 });
    expect(warnings.filter((w) => /queue full/.test(w))).toHaveLength(2);
    expect(await ex.shutdown(50)).toBe(false);
  });

  it("never throws into the app: a fetch that throws, a closed exporter", async () => {
    const warnings: string[] = [];
    const ex = new Exporter({
      url: gw.url,
      retryDelayMs: 1,
      onWarning: (w) => warnings.push(w),
      fetch: () => {
        throw new TypeError("boom");
      },
    });
    expect(() => ex.export(record("x"))).not.toThrow();
    expect(await ex.flush(100)).toBe(false);
    expect(warnings[0]).toMatch(/boom/);
    await ex.shutdown(10);
    expect(() => ex.export(record("x"))).not.toThrow();
    await expect.poll(() => ex.stats.dropped).toBe(2); // the one shutdown gave up, and the one after
  });

  it("10,000 wrapped calls while the server is down for 5 s, then back: every call stored exactly once", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "tollgate-outage-"));
    const start = (port: number) =>
      startServer({ dataDir, pricebookPath: null, port, host: "127.0.0.1", log: () => {} });
    let server = await start(0);
    const port = Number(new URL(server.url).port);
    const ingest = (await createKey(server.runtime.app, server.runtime.rootToken, "default", "ingest")).json
      .key;
    const warnings: string[] = [];
    const ex = new Exporter({
      url: server.url,
      apiKey: ingest,
      retryDelayMs: 50,
      maxRetryDelayMs: 500,
      onWarning: (w) => warnings.push(w),
    });
    const eventIds: string[] = [];
    const client = wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${mock.url}/v1`, maxRetries: 0 }), {
      sink: (r) => {
        eventIds.push(r.event_id);
        ex.export(r);
      },
    });
    const feature = newFeature();
    const calls = (n: number, spreadMs: number) =>
      withAttribution({ feature }, async () => {
        const t0 = Date.now();
        for (let i = 0; i < n; i += 20) {
          await Promise.all(
            Array.from({ length: Math.min(20, n - i) }, () =>
              client.chat.completions.create({
                model: "gpt-4.1-nano",
                messages: [{ role: "user", content: "hi" }],
              }),
            ),
          );
          const due = t0 + (spreadMs * (i + 20)) / n; // spread the calls over the phase
          if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
        }
      });
    try {
      await calls(2000, 1000);
      await server.stop(); // down: 5 s of calls with nowhere to send them
      const downAt = Date.now();
      await calls(6000, 4500);
      await new Promise((r) => setTimeout(r, Math.max(0, 5000 - (Date.now() - downAt))));
      server = await start(port);
      await calls(2000, 1000);
      expect(await ex.flush(30_000)).toBe(true);
      expect(eventIds).toHaveLength(10_000);
      const rows = await stored(server.runtime, feature);
      expect(rows).toHaveLength(10_000);
      expect(new Set(rows.map((r) => r.event_id))).toEqual(new Set(eventIds));
      expect(rows.every((r) => r.cost_nanousd > 0n)).toBe(true);
      expect(ex.stats).toMatchObject({ delivered: 10_000, dropped: 0, rejected: 0, queued: 0 });
      expect(ex.stats.retries).toBeGreaterThan(0);
      expect(warnings.some((w) => /unreachable/.test(w))).toBe(true);
    } finally {
      await ex.shutdown(1000);
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("Exporter: settings from the environment", () => {
  it("reads an empty TOLLGATE_URL as unset: the local server, not a relative path", async () => {
    const was = process.env.TOLLGATE_URL;
    process.env.TOLLGATE_URL = "";
    const urls: string[] = [];
    try {
      const ex = new Exporter({
        flushIntervalMs: 10,
        fetch: async (url, init) => {
          urls.push(String(url));
          const n = JSON.parse(String(init?.body)).length;
          return new Response(JSON.stringify({ accepted: n, duplicates: 0, rejected: 0, results: [] }));
        },
      });
      ex.export(record(newFeature()));
      await expect.poll(() => ex.stats.delivered, { timeout: 5000 }).toBe(1);
    } finally {
      if (was === undefined) delete process.env.TOLLGATE_URL;
      else process.env.TOLLGATE_URL = was;
    }
    expect(urls).toEqual(["http://127.0.0.1:4242/v1/events"]);
  });
});
