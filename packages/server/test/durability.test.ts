import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { uuidv7 } from "@tollgate/core";
import { afterAll, describe, expect, it } from "vitest";

// Runs the built CLI (npm test builds first), exactly as a user would.
const CLI = new URL("../bin/tollgate.js", import.meta.url).pathname;
const dataDir = mkdtempSync(join(tmpdir(), "tollgate-kill-"));
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

async function startServer(): Promise<{ proc: ChildProcess; url: string; token: string }> {
  rmSync(join(dataDir, "server.json"), { force: true });
  const proc = spawn(process.execPath, [CLI, "--data-dir", dataDir, "serve", "--port", "0"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.push(proc);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (existsSync(join(dataDir, "server.json"))) {
      const info = JSON.parse(readFileSync(join(dataDir, "server.json"), "utf8"));
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
    const other = spawnSync(process.execPath, [CLI, "--data-dir", dataDir, "serve", "--port", "0"], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/in use by another Tollgate process/);
    expect((await fetch(`${second.url}/healthz`)).status).toBe(200);
    const stopped = new Promise((r) => second.proc.once("exit", r));
    second.proc.kill("SIGTERM");
    await stopped;
  }, 120_000);
});
