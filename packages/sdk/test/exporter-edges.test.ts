// The batching exporter at its edges, against a stand-in fetch (no server): a record queued as the sender
// finishes, a flush with no end, a record that cannot be sent as JSON, records dropped after shutdown, and
// records a script's exit could not deliver.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type CallRecordInput, uuidv7 } from "@tollgate/core";
import { describe, expect, it, vi } from "vitest";
import { Exporter } from "../src/index.js";
import { exposedGc } from "./gc.js";

const record = (extra: Record<string, unknown> = {}): CallRecordInput => ({
  event_id: uuidv7(),
  ts_start: Date.now(),
  provider: "openai",
  model: "gpt-4o-mini",
  ...extra,
});

/** The server's reply to a batch: every record stored. */
const stored = (init?: RequestInit) => {
  const n = (JSON.parse(String(init?.body)) as unknown[]).length;
  const results = Array.from({ length: n }, (_, index) => ({ index, status: "accepted" }));
  return new Response(JSON.stringify({ accepted: n, results }));
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("Exporter edges", () => {
  it("a record queued while the sender is finishing its last batch is still sent", async () => {
    // The sender's last reply lands; a call recorded a few microtasks later (any depth) finds it still at
    // work, so it sets no timer of its own, and the sender must not leave it behind.
    const stranded: number[] = [];
    for (let depth = 0; depth < 20; depth++) {
      let answer!: () => void;
      let requests = 0;
      const ex = new Exporter({
        url: "http://tollgate.test",
        flushIntervalMs: 5,
        onWarning: () => {},
        fetch: (_url, init) => {
          if (++requests > 1) return Promise.resolve(stored(init));
          return new Promise((r) => {
            answer = () => r(stored(init));
          });
        },
      });
      ex.export(record());
      await expect.poll(() => requests).toBe(1); // its timer fired: the first batch is in flight
      answer();
      for (let i = 0; i < depth; i++) await Promise.resolve();
      ex.export(record());
      await sleep(50); // ten flush intervals
      if (ex.stats.queued > 0) stranded.push(depth);
      await ex.shutdown(1000);
    }
    expect(stranded).toEqual([]);
  });

  it("flush(Infinity) waits for delivery rather than giving up at once", async () => {
    const ex = new Exporter({
      url: "http://tollgate.test",
      fetch: async (_url, init) => {
        await sleep(100);
        return stored(init);
      },
    });
    ex.export(record());
    expect(await ex.flush(Number.POSITIVE_INFINITY)).toBe(true);
    expect(ex.stats).toMatchObject({ queued: 0, delivered: 1 });
    expect(await ex.flush(Number.NaN)).toBe(true); // nothing queued: nothing to wait for
    ex.export(record());
    expect(await ex.shutdown(Number.NaN)).toBe(false); // an unreadable timeout waits for nothing
  });

  it("a record that cannot be sent as JSON is refused alone; its batch and the records after it are delivered", async () => {
    const warnings: string[] = [];
    const ex = new Exporter({
      url: "http://tollgate.test",
      retryDelayMs: 1,
      onWarning: (w) => warnings.push(w),
      fetch: async (_url, init) => stored(init),
    });
    for (let i = 0; i < 5; i++) ex.export(record());
    ex.export(record({ usage_raw: { total: 12n } }));
    for (let i = 0; i < 5; i++) ex.export(record());
    expect(await ex.flush(2000)).toBe(true);
    expect(ex.stats).toMatchObject({ queued: 0, delivered: 10, rejected: 1, retries: 0 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/1 call records refused: .*JSON.*BigInt/);
  });

  it("records JSON cannot hold, many in a batch: refused in one warning, the rest sent in one request", async () => {
    // A sink that adds a BigInt to some records (its own cost in nano-USD, say): each refused and warned
    // alone, the batch split down to single records, one request for each record that could go.
    const warnings: string[] = [];
    const requests: number[] = [];
    const ex = new Exporter({
      url: "http://tollgate.test",
      maxBatch: 100,
      onWarning: (w) => warnings.push(w),
      fetch: async (_url, init) => {
        requests.push((JSON.parse(String(init?.body)) as unknown[]).length);
        return stored(init);
      },
    });
    const sent = Array.from({ length: 100 }, (_, i) => record(i % 2 ? { usage_raw: { nano: 1n } } : {}));
    // One JSON has no text for (its toJSON gives undefined) goes as an array has it, null: the server's to refuse.
    sent[0] = { ...sent[0]!, toJSON: () => undefined } as CallRecordInput;
    for (const r of sent) ex.export(r);
    expect(await ex.flush(5000)).toBe(true);
    expect(ex.stats).toMatchObject({ queued: 0, delivered: 50, rejected: 50, retries: 0 });
    expect(requests).toEqual([50]);
    expect(warnings).toEqual([expect.stringMatching(/^50 call records refused: .*JSON.*BigInt/)]);
  });

  it("records made after shutdown() are dropped and warned as such, not as a full queue", async () => {
    const warnings: string[] = [];
    const ex = new Exporter({
      url: "http://tollgate.test",
      onWarning: (w) => warnings.push(w),
      fetch: async (_url, init) => stored(init),
    });
    expect(await ex.shutdown()).toBe(true);
    ex.export(record());
    expect(ex.stats.dropped).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/shut down/);
    expect(warnings[0]).not.toMatch(/queue full/);
  });

  it("a script whose records could not be delivered before it exits says so", async () => {
    // The built package, as a script imports it; its Tollgate is nowhere (port 9 refuses).
    const sdk = new URL("../dist/index.js", import.meta.url).href;
    const script = `
      import { Exporter, uuidv7 } from ${JSON.stringify(sdk)};
      const ex = new Exporter({ url: "http://127.0.0.1:9", retryDelayMs: 20, maxRetryDelayMs: 50 });
      ex.export({ event_id: uuidv7(), ts_start: Date.now(), provider: "openai", model: "m" });
    `;
    const { stderr } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: fileURLToPath(new URL(".", import.meta.url)),
      timeout: 30_000,
    });
    expect(stderr).toMatch(/unreachable/);
    expect(stderr).toMatch(/1 call records were not delivered/);
  }, 40_000);

  it("an exporter the app lets go of, its records delivered, is collected", async () => {
    const gc = exposedGc();
    const made = (): WeakRef<Exporter> => {
      const ex = new Exporter({ url: "http://tollgate.test", fetch: async (_url, init) => stored(init) });
      ex.export(record());
      return new WeakRef(ex);
    };
    // One per request, say (its tenant's key): delivered, it must not stay in memory for the process's life.
    const refs = Array.from({ length: 10 }, made);
    const poll = { timeout: 10_000 };
    await expect.poll(() => refs.every((r) => r.deref()?.stats.queued === 0), poll).toBe(true);
    await expect
      .poll(() => {
        gc();
        return refs.filter((r) => r.deref() !== undefined).length;
      }, poll)
      .toBe(0);
  });

  it("an onWarning that throws never reaches the app: not through export(), not through flush()", async () => {
    const ex = new Exporter({
      url: "http://tollgate.test",
      maxBatch: 1,
      maxQueue: 1,
      retryDelayMs: 1,
      onWarning: () => {
        throw new Error("logger down");
      },
      fetch: async () => new Response("{}", { status: 503 }),
    });
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      for (let i = 0; i < 3; i++) expect(() => ex.export(record())).not.toThrow(); // past maxQueue: warned
      expect(await ex.flush(100)).toBe(false); // the 503s: warned
      expect(warn.mock.calls.map((args) => String(args[0]))).toEqual([
        expect.stringMatching(/onWarning threw \(logger down\)/),
      ]);
    } finally {
      warn.mockRestore();
      await ex.shutdown(1);
    }
  });
  it("a url it cannot send to is refused at once; one from TOLLGATE_URL refuses each batch, warned, never retried", async () => {
    for (const url of ["127.0.0.1:4242", "localhost", "ftp://tollgate.test", "/relative"])
      expect(() => new Exporter({ url })).toThrow(/url must be an absolute http\(s\) URL/);
    const warnings: string[] = [];
    let requests = 0;
    vi.stubEnv("TOLLGATE_URL", "tollgate.internal:4242");
    try {
      const ex = new Exporter({
        retryDelayMs: 1,
        onWarning: (w) => warnings.push(w),
        fetch: (_url, init) => {
          requests++;
          return Promise.resolve(stored(init));
        },
      });
      ex.export(record());
      ex.export(record());
      expect(await ex.flush(1000)).toBe(true);
      expect(ex.stats).toMatchObject({ queued: 0, delivered: 0, rejected: 2, retries: 0 });
      expect(requests).toBe(0);
      expect(warnings).toEqual([
        '2 call records refused: TOLLGATE_URL must be an absolute http(s) URL such as http://127.0.0.1:4242, not "tollgate.internal:4242"',
      ]);
      await ex.shutdown(100);
    } finally {
      vi.unstubAllEnvs();
    }
  });
  it("shutdown() with records it could not deliver gives them up: the sender stops retrying, they count as dropped", async () => {
    let requests = 0;
    const warnings: string[] = [];
    const ex = new Exporter({
      url: "http://tollgate.test",
      retryDelayMs: 10,
      maxRetryDelayMs: 50,
      onWarning: (w) => warnings.push(w),
      fetch: () => {
        requests++;
        return Promise.resolve(new Response("down", { status: 503 }));
      },
    });
    for (let i = 0; i < 3; i++) ex.export(record());
    expect(await ex.shutdown(100)).toBe(false);
    expect(warnings.at(-1)).toBe(
      "shutdown: 3 call records were not delivered within 100 ms; they are dropped",
    );
    await sleep(20); // a retry's wait cut short, the sender's next turn
    const after = requests;
    await sleep(300); // six of its longest waits
    expect(requests).toBe(after);
    expect(ex.stats).toMatchObject({ queued: 0, delivered: 0, dropped: 3 });
  });
});
