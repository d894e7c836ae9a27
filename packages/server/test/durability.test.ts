import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCallRecord, PricingEngine, uuidv7 } from "@tollgate/core";
import OpenAI from "openai";
import { afterAll, describe, expect, it } from "vitest";
import { Spool } from "../src/gateway/spool.js";
import { CLI, spawnCli } from "./cli-run.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";

const dataDir = mkdtempSync(join(tmpdir(), "tollgate-kill-"));
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

async function startServer(
  dir = dataDir,
  env: Record<string, string> = {},
): Promise<{ proc: ChildProcess; url: string; token: string }> {
  rmSync(join(dir, "server.json"), { force: true });
  const proc = spawn(process.execPath, [CLI, "--data-dir", dir, "serve", "--port", "0"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  children.push(proc);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (existsSync(join(dir, "server.json"))) {
      const info = JSON.parse(readFileSync(join(dir, "server.json"), "utf8"));
      if (info.pid === proc.pid) return { proc, url: info.url, token: info.token };
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("server did not start");
}

function batch(n: number): Record<string, unknown>[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    event_id: uuidv7(now + i),
    ts_start: now - 1000,
    provider: "anthropic",
    model: "claude-sonnet-4-5",
    input_uncached_tokens: 100 + i,
    output_tokens: 20,
    feature: "durability",
  }));
}

async function storedIds(url: string, token: string): Promise<Set<string>> {
  const res = await fetch(`${url}/api/events?limit=100000`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return new Set(((await res.json()) as EventsReply).events.map((e) => e.event_id));
}

interface EventsReply {
  events: { event_id: string }[];
}

interface IngestReply {
  duplicates: number;
  results: { event_id: string; status: string }[];
}

async function post(
  url: string,
  token: string,
  body: unknown,
): Promise<{ status: number; json: IngestReply }> {
  const res = await fetch(`${url}/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as IngestReply };
}

describe("durability", () => {
  it("keeps every acknowledged event across kill -9, with no duplicates after a full retry", async () => {
    const first = await startServer();
    const sent: Record<string, unknown>[][] = [];
    const acked = new Set<string>();
    let stop = false;
    // Four writers keep requests in flight so the kill lands mid-ingest.
    const writers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const b = batch(250);
        sent.push(b);
        let reply: Awaited<ReturnType<typeof post>>;
        try {
          reply = await post(first.url, first.token, b);
        } catch {
          return; // connection reset by the kill
        }
        expect(reply.status).toBe(200);
        for (const r of reply.json.results) if (r.status === "accepted") acked.add(r.event_id);
      }
    });
    while (acked.size < 5000) await new Promise((r) => setTimeout(r, 5));
    const exited = new Promise((r) => first.proc.once("exit", r));
    first.proc.kill("SIGKILL");
    stop = true;
    await Promise.all(writers);
    await exited;

    const second = await startServer();
    const res = await fetch(`${second.url}/api/events?limit=100000`, {
      headers: { authorization: `Bearer ${second.token}` },
    });
    const stored: string[] = ((await res.json()) as EventsReply).events.map(
      (e: { event_id: string }) => e.event_id,
    );
    const storedSet = new Set(stored);
    expect(stored.length).toBe(storedSet.size); // no duplicates
    const missing = [...acked].filter((id) => !storedSet.has(id));
    expect(missing).toEqual([]); // every ack survived
    expect(acked.size).toBeGreaterThanOrEqual(5000);
    expect(sent.flat().length).toBeGreaterThan(acked.size); // some batches were in flight at the kill

    // A client that retries everything it sent (acked or not) double-counts nothing.
    let duplicates = 0;
    for (const b of sent) {
      const { status, json } = await post(second.url, second.token, b);
      expect(status).toBe(200);
      duplicates += json.duplicates;
    }
    expect(duplicates).toBeGreaterThanOrEqual(acked.size);
    const all = new Set(sent.flat().map((r) => r.event_id as string));
    const after = await fetch(`${second.url}/api/events?limit=100000`, {
      headers: { authorization: `Bearer ${second.token}` },
    });
    const finalIds: string[] = ((await after.json()) as EventsReply).events.map(
      (e: { event_id: string }) => e.event_id,
    );
    expect(finalIds.length).toBe(all.size);
    expect(new Set(finalIds).size).toBe(all.size);

    // A second process on the same data dir is refused with a clear message, and the first keeps running.
    const other = await spawnCli(["--data-dir", dataDir, "serve", "--port", "0"], { timeoutMs: 20_000 });
    expect(other.code).not.toBe(0);
    expect(other.err).toMatch(/in use by another Tollgate process/);
    expect((await fetch(`${second.url}/healthz`)).status).toBe(200);
    const stopped = new Promise((r) => second.proc.once("exit", r));
    second.proc.kill("SIGTERM");
    await stopped;
  }, 120_000);

  it("a second SIGTERM cuts the calls in flight short: it exits at once, and every answered call is recorded", async () => {
    await withSignalledServer("tollgate-signals-", async ({ openai, signalTwice }) => {
      // A stream of a few seconds, in flight at the signals.
      const slow = { headers: { "x-mock-chunk-delay-ms": "400" } };
      const stream = await openai.chat.completions.create({ ...ASK, stream: true }, slow);
      const streamed = (async () => {
        for await (const _ of stream);
      })().catch(() => "cut");
      // Answered just before the signals: their records are still in memory (written every 250 ms).
      const answered = await Promise.all(
        Array.from({ length: 20 }, () => openai.chat.completions.create(ASK).withResponse()),
      );
      const ids = answered.map((a) => a.response.headers.get("x-tollgate-event-id")!);
      await signalTwice(); // not the 10 s grace
      expect(await streamed).toBe("cut");
      return async (second) => {
        const stored = await storedIds(second.url, second.token);
        expect(ids.filter((id) => !stored.has(id))).toEqual([]);
        expect(stored.size).toBe(ids.length + 1); // and the stream, recorded as cut short
      };
    });
  }, 60_000);

  it("a second SIGTERM does not wait for a call whose whole reply the upstream has not sent: it is cut and recorded", async () => {
    await withSignalledServer("tollgate-signals-whole-", async ({ mock, openai, signalTwice }) => {
      // Not streamed, and a model slow to answer (a long reasoning call): in flight at the signals. Its
      // reply is held whole and runs on when its client goes (its cost is billed), as the gateway does.
      const slow = { headers: { "x-mock-headers-delay-ms": "20000" } };
      const waiting = openai.chat.completions.create(ASK, slow).catch(() => "cut");
      while (!mock.requests.length) await new Promise((r) => setTimeout(r, 20));
      await signalTwice(); // not the upstream's 20 s
      expect(await waiting).toBe("cut");
      return async (second) => {
        const res = await fetch(`${second.url}/api/events?limit=10`, {
          headers: { authorization: `Bearer ${second.token}` },
        });
        const events = ((await res.json()) as { events: Record<string, unknown>[] }).events;
        // The call cut short, recorded as one whose client left: the upstream had it, its input is estimated.
        expect(events).toMatchObject([
          { status: "error", error_type: "client_disconnected", cost_source: "estimated" },
        ]);
        expect(Number(events[0]!.input_uncached_tokens)).toBeGreaterThan(0);
      };
    });
  }, 60_000);

  it("serves while a big spool is stored in the background, counted from the start; kill -9 midway stores and counts each call once", async () => {
    const mock = await startMockUpstream({ chunkDelayMs: 0 });
    const dir = mkdtempSync(join(tmpdir(), "tollgate-spool-background-"));
    const env = { TOLLGATE_OPENAI_BASE_URL: `${mock.url}/v1` };
    const api = async (s: { url: string; token: string }, path: string, init: RequestInit = {}) =>
      (await fetch(`${s.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      }).then((r) => r.json())) as Record<string, unknown>;
    const stop = async (s: { proc: ChildProcess }, signal: NodeJS.Signals) => {
      const exited = new Promise((r) => s.proc.once("exit", r));
      s.proc.kill(signal);
      await exited;
    };
    try {
      const setup = await startServer(dir, env);
      const budget = { id: "spooled", scope: { feature: "spooled" }, window: "day", limit_usd: "100.00" };
      await api(setup, "/api/budgets", { method: "POST", body: JSON.stringify(budget) });
      await stop(setup, "SIGTERM");
      // Calls a gateway answered and spooled while its store was down ($700 in all), left for the next start.
      const engine = new PricingEngine();
      const spool = new Spool(join(dir, "spool"));
      let cost = 0n;
      for (let file = 0; file < 10; file++) {
        const records = batch(2_000).map((r) => {
          const built = buildCallRecord(
            {
              ...r,
              provider: "openai",
              api: "openai.chat",
              model: "gpt-4o",
              input_uncached_tokens: 10_000,
              output_tokens: 1_000,
              feature: "spooled",
            },
            { workspaceId: "default", engine },
          );
          if (!built.ok) throw new Error(JSON.stringify(built.errors));
          cost += built.record.cost_nanousd;
          return built.record;
        });
        spool.spill(records);
      }

      const first = await startServer(dir, env);
      let log = "";
      first.proc.stderr!.on("data", (d) => {
        log += d;
      });
      const openai = new OpenAI({ apiKey: "sk-test-123", baseURL: `${first.url}/v1`, maxRetries: 0 });
      // Serving: a call under no budget is proxied; one under the budget is refused on the spooled spend.
      await openai.chat.completions.create(ASK, { headers: { "x-tollgate-feature": "other" } });
      const refused = await openai.chat.completions
        .create(ASK, { headers: { "x-tollgate-feature": "spooled" } })
        .catch((e: { status: number }) => e.status);
      expect(refused).toBe(429);
      expect((await api(first, "/api/budgets/spooled")).spend_nanousd).toBe(String(cost));
      // Killed wherever its replay is (a file stored and not yet removed, a store midway, or none yet).
      await stop(first, "SIGKILL");
      expect(log).toMatch(
        /recording: 20000 calls spooled before this start wait to be stored: stored in the background/,
      );

      const second = await startServer(dir, env);
      expect((await api(second, "/api/budgets/spooled")).spend_nanousd).toBe(String(cost));
      while ((await api(second, "/readyz")).spool_depth !== 0) await new Promise((r) => setTimeout(r, 50));
      const spend = (await api(second, "/api/spend?by=feature&from=1d")) as {
        rows: Record<string, unknown>[];
      };
      expect(spend.rows.find((r) => r.key === "spooled")).toMatchObject({
        calls: 20_000,
        cost_nanousd: String(cost),
      });
      expect((await api(second, "/api/budgets/spooled")).spend_nanousd).toBe(String(cost));
      await stop(second, "SIGTERM");
    } finally {
      await mock.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

const ASK = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "hi" }] };

/**
 * A `tollgate serve` on a fresh data dir in front of a mock upstream: `during` makes its calls and sends
 * SIGTERM twice (`signalTwice`: the process must exit 0 within 5 s), and returns what to check of the
 * records, in a second process on the same data dir.
 */
async function withSignalledServer(
  prefix: string,
  during: (s: {
    mock: MockUpstream;
    openai: OpenAI;
    signalTwice: () => Promise<void>;
  }) => Promise<(second: Awaited<ReturnType<typeof startServer>>) => Promise<void>>,
): Promise<void> {
  const mock = await startMockUpstream({ chunkDelayMs: 0 });
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    const first = await startServer(dir, { TOLLGATE_OPENAI_BASE_URL: `${mock.url}/v1` });
    const openai = new OpenAI({ apiKey: "sk-test-123", baseURL: `${first.url}/v1`, maxRetries: 0 });
    const signalTwice = async () => {
      const exited = new Promise((r) => first.proc.once("exit", (code, signal) => r({ code, signal })));
      const signalled = Date.now();
      first.proc.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 50));
      first.proc.kill("SIGTERM");
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(Date.now() - signalled).toBeLessThan(5_000);
    };
    const check = await during({ mock, openai, signalTwice });
    const second = await startServer(dir);
    await check(second);
    const stopped = new Promise((r) => second.proc.once("exit", r));
    second.proc.kill("SIGTERM");
    await stopped;
  } finally {
    await mock.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
