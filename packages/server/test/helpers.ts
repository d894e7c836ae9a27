import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type CallRecord,
  COST_CATEGORIES,
  COST_FIELDS,
  type ExtractedUsage,
  PricingEngine,
  USAGE_FIELDS,
  uuidv7,
} from "@tollgate/core";
import { expect } from "vitest";
import { openRuntime, type Runtime } from "../src/runtime.js";

/** A valid minimal call record; `overrides` replace (or, when `undefined`, remove) fields. */
export function validRecord(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const rec: Record<string, unknown> = {
    event_id: uuidv7(),
    ts_start: Date.now() - 1_000,
    provider: "openai",
    model: "gpt-4o-mini",
    api: "openai.chat",
    input_uncached_tokens: 100,
    output_tokens: 20,
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete rec[k];
    else rec[k] = v;
  }
  return rec;
}

/** A runtime on its own fresh temp data dir; `close()` also removes the dir. */
export async function openTestRuntime(): Promise<Runtime & { dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "tollgate-test-"));
  const rt = await openRuntime({ dataDir, pricebookPath: null });
  return {
    ...rt,
    dataDir,
    close: async () => {
      await rt.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

type App = Runtime["app"];

// biome-ignore lint/suspicious/noExplicitAny: test responses are inspected loosely
export type Json = any;

/** POSTs a batch (records, or a raw string / bytes body) to /v1/events with a bearer key. */
export async function postEvents(
  app: App,
  key: string | null,
  body: unknown,
  query = "",
  extraHeaders: Record<string, string> = {},
): Promise<{ status: number; json: Json }> {
  const raw = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
  const headers: Record<string, string> = { "content-type": "application/json", ...extraHeaders };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await app.request(`/v1/events${query}`, {
    method: "POST",
    headers,
    body: raw as NonNullable<RequestInit["body"]>,
  });
  return { status: res.status, json: await res.json() };
}

/** GET with a bearer key; answers status + parsed JSON. */
export async function getJson(
  app: App,
  key: string | null,
  path: string,
): Promise<{ status: number; json: Json }> {
  const res = await app.request(path, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: res.status, json: await res.json() };
}

/** A GET that must answer 200 (the failure names the path and the answer): its parsed JSON. */
export async function getOk(app: App, key: string | null, path: string): Promise<Json> {
  const res = await getJson(app, key, path);
  expect(res.status, `${path}: ${JSON.stringify(res.json)}`).toBe(200);
  return res.json;
}

/** An API call to a running server as its local admin (root token): status and parsed JSON. */
export async function adminRequest(
  server: { url: string; runtime: { rootToken: string } },
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Json }> {
  const res = await fetch(server.url + path, {
    method,
    headers: { authorization: `Bearer ${server.runtime.rootToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Creates a key through POST /api/keys with `adminKey` (root token or an admin key). */
export async function createKey(app: App, adminKey: string, workspace: string, role: string) {
  const res = await app.request("/api/keys", {
    method: "POST",
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: JSON.stringify({ workspace, role }),
  });
  return { status: res.status, json: (await res.json()) as Json };
}

// ---- gateway tests ----

export interface RawResponse {
  status: number;
  headers: import("node:http").IncomingHttpHeaders;
  body: string;
  trailers: NodeJS.Dict<string>;
}

/** What an Anthropic client sends with a raw request (its SDK's key and version headers). */
export const ANTHROPIC_HEADERS = {
  "content-type": "application/json",
  "x-api-key": "sk-ant-test",
  "anthropic-version": "2023-06-01",
} as const;

/** One plain node:http request (no fetch): the only way to see HTTP trailers. */
export async function rawRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  const { request } = await import("node:http");
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? "GET", headers: init.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("utf8"),
          trailers: res.trailers,
        }),
      );
    });
    req.on("error", reject);
    req.end(init.body);
  });
}

/** The whole server (gateway + API) on 127.0.0.1:0 over a fresh temp data dir; `stop()` removes the dir. */
export async function startTestGateway(
  upstreamOrigin: string,
  gateway: Partial<import("../src/gateway/config.js").GatewayConfig> = {},
  runtime: Partial<import("../src/config.js").RuntimeOptions> & {
    keepDataDir?: boolean;
    port?: number;
    log?: (msg: string) => void;
  } = {},
): Promise<{
  runtime: Runtime;
  url: string;
  dataDir: string;
  jobs: import("../src/jobs/index.js").RunningJobs | null;
  stop: () => Promise<void>;
}> {
  const { startServer } = await import("../src/serve.js");
  const { keepDataDir, port = 0, ...runtimeOpts } = runtime;
  const dataDir = runtimeOpts.dataDir ?? mkdtempSync(join(tmpdir(), "tollgate-gw-test-"));
  const server = await startServer({
    pricebookPath: null,
    log: () => {},
    ...runtimeOpts,
    dataDir,
    port,
    host: "127.0.0.1",
    gateway: {
      openaiBaseUrl: `${upstreamOrigin}/v1`,
      anthropicBaseUrl: `${upstreamOrigin}/v1`,
      timeoutMs: 2000,
      retries: 0,
      egressProxy: null, // the upstreams of tests are on 127.0.0.1, whatever proxy this machine sets
      publicUrl: null, // nor whatever TOLLGATE_PUBLIC_URL it sets
      ...gateway,
    },
  });
  return {
    ...server,
    dataDir,
    stop: async () => {
      await server.stop();
      if (!keepDataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every record the gateway made so far in a workspace (after the recorder has stored them). */
export async function gatewayRecords(runtime: Runtime, workspaceId = "default"): Promise<CallRecord[]> {
  await runtime.recorder.flush();
  return runtime.store.query({ workspaceId, limit: 1000 });
}

const referenceEngine = new PricingEngine();

/**
 * The record's usage, model and cost are exactly what @tollgate/core computes from the provider payload:
 * `extracted` comes from extractFromResponse / extractFromSse of the fixture, priced at the record's time.
 */
export function expectExactUsageAndCost(rec: CallRecord, extracted: ExtractedUsage | null, provider: string) {
  expect(extracted, "the fixture has usage").not.toBeNull();
  const ex = extracted!;
  expect(rec.model).toBe(ex.model);
  for (const f of USAGE_FIELDS) expect(rec[f], f).toBe(ex.usage[f]);
  expect(rec.usage_raw).toEqual(ex.usage_raw);
  // Priced on the tier the provider says it served (OpenAI's flex is billed at batch rates).
  if (ex.service_tier) expect(rec.service_tier).toBe(ex.service_tier);
  const price = referenceEngine.price({
    provider,
    model: ex.model!,
    usage: ex.usage,
    at: rec.ts_start,
    serviceTier: ex.service_tier,
  });
  expect(price.priced).toBe(true);
  expect(rec.priced).toBe(true);
  expect(rec.price_ref).toBe(price.price_ref);
  expect(rec.cost_source).toBe("computed");
  expect(rec.cost_nanousd).toBe(price.cost.total_nanousd);
  expect(rec.cost_nanousd > 0n).toBe(true);
  for (const [i, c] of COST_CATEGORIES.entries())
    expect(rec[COST_FIELDS[i]!], c).toBe(price.cost.by_category[c]);
}

/**
 * Per-test markers for gateway tests: each case sends an `x-test-case` header (not x-tollgate-*, so it
 * reaches the mock) and finds its own upstream requests by it.
 */
export function testCases<R extends { headers: Record<string, unknown> }>(
  prefix: string,
  requests: () => R[],
) {
  let seq = 0;
  return {
    newCase: () => `${prefix}-${++seq}-${Date.now()}`,
    tagged: (id: string, extra: Record<string, string> = {}) => ({
      headers: { "x-test-case": id, ...extra },
    }),
    upstreamOf: (id: string) => requests().filter((r) => r.headers["x-test-case"] === id),
  };
}

/** The stored record whose event_id a gateway reply announced in x-tollgate-event-id. */
export async function recordByEventId(
  runtime: Runtime,
  eventId: string | null,
  workspace = "default",
): Promise<CallRecord> {
  expect(eventId, "x-tollgate-event-id header").toMatch(/^[0-9a-f-]{36}$/);
  const rec = (await gatewayRecords(runtime, workspace)).find((r) => r.event_id === eventId);
  expect(rec, `record ${eventId}`).toBeDefined();
  return rec!;
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** A TCP server that takes connections and never says a word: a stuck TLS handshake, a proxy that never answers CONNECT. */
export async function startSilentServer(): Promise<{
  origin: (scheme: string) => string;
  close: () => void;
}> {
  const { createServer } = await import("node:net");
  const server = createServer((s) => s.on("error", () => {}));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as import("node:net").AddressInfo;
  return { origin: (scheme) => `${scheme}://127.0.0.1:${port}`, close: () => server.close() };
}

/** The record of a call that timed out before anything of it reached the upstream: not billed. */
export const UNSENT_TIMEOUT = {
  status: "error",
  error_type: "timeout",
  cost_nanousd: 0n,
  cost_source: "computed",
} as const;

/** What a call through a provider SDK came to: "ok", or the code of the error it raised (budget_exceeded, …). */
export function okOrCode(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => "ok",
    (e: { code?: string }) => String(e.code),
  );
}

/** A one-message gpt-4.1-nano chat call through `client`, come to "ok" or its error's code (okOrCode). */
export function nanoChat(
  client: { chat: { completions: { create(body: object): Promise<unknown> } } },
  content = "x",
): Promise<string> {
  return okOrCode(
    client.chat.completions.create({ model: "gpt-4.1-nano", messages: [{ role: "user", content }] }),
  );
}

/**
 * A limits file, in a temp dir of its own: a $10/day budget on `feature`, and a $10 cost ceiling on the
 * agent type `researcher`.
 */
export function researcherLimitsFile(feature: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "tollgate-limits-")), "limits.yaml");
  writeFileSync(
    path,
    [
      "budgets:",
      `  - { id: ${feature}, scope: { feature: ${feature} }, window: day, limit_usd: "10" }`,
      "agents:",
      '  researcher: { max_cost_usd: "10" }',
    ].join("\n"),
  );
  return path;
}

/**
 * A test gateway (`gateway` config over the defaults) with a $10/day budget on `feature`, an OpenAI client
 * on it (key sk-test), what the budget says, and the records of one request id (a background response's).
 */
export async function budgetedGateway(
  upstreamOrigin: string,
  feature: string,
  gateway: Partial<import("../src/gateway/config.js").GatewayConfig> = {},
) {
  const { default: OpenAI } = await import("openai");
  const gw = await startTestGateway(upstreamOrigin, gateway);
  await adminRequest(gw, "POST", "/api/budgets", {
    id: feature,
    scope: { feature },
    window: "day",
    limit_usd: "10",
  });
  const openai = new OpenAI({ apiKey: "sk-test", baseURL: `${gw.url}/v1`, maxRetries: 0 });
  const budget = async () =>
    (await adminRequest(gw, "GET", `/api/budgets/${feature}`)).json as {
      spend_nanousd: string;
      reserved_usd: string;
    };
  const records = async (id: string) => (await gatewayRecords(gw.runtime)).filter((r) => r.request_id === id);
  return { gw, openai, budget, records };
}

/**
 * `target` (a real store), whose next `method` call after `hold()` does its work at once but answers only
 * when the function `hold()` returned is called: a slow read or write, to interleave others with.
 */
export function holdable<T extends object>(target: T, method: keyof T & string) {
  let gate: Promise<void> | null = null;
  const delayed = new Proxy(target, {
    get(t, p) {
      const v = Reflect.get(t, p);
      if (typeof v !== "function") return v;
      if (p !== method) return v.bind(t);
      return async (...args: unknown[]) => {
        const wait = gate;
        gate = null;
        const out = await v.apply(t, args); // its work done, its answer held back
        await wait;
        return out;
      };
    },
  });
  const hold = () => {
    let open!: () => void;
    gate = new Promise<void>((r) => {
      open = r;
    });
    return open;
  };
  return { delayed, hold };
}

/** What the guard knows of a one-message gpt-4o-mini chat call before it is sent (SpendGuard.admit). */
export function chatContext(
  facts: import("../src/limits/guard.js").CallContext["facts"],
  opts: { maxTokens?: number; requestId?: string } = {},
): import("../src/limits/guard.js").CallContext {
  const body = {
    model: "gpt-4o-mini",
    max_tokens: opts.maxTokens ?? 100,
    messages: [{ role: "user", content: "hi" }],
  };
  return {
    workspace: "default",
    facts,
    api: "openai.chat",
    provider: "openai",
    model: "gpt-4o-mini",
    body,
    raw: Buffer.from(JSON.stringify(body)),
    requestId: opts.requestId ?? `req-${uuidv7()}`,
    retry: false,
    depth: 1,
  };
}

/** A CONNECT proxy: it notes each tunnel's target and Proxy-Authorization; `refuse` answers 407 instead. */
export async function startConnectProxy(opts: { refuse?: boolean } = {}) {
  const tunnels: { target: string; auth: string | undefined }[] = [];
  const plain: string[] = [];
  const server: Server = createServer((req, res) => {
    plain.push(req.url ?? ""); // a request sent to the proxy without a tunnel: not expected
    res.writeHead(502).end();
  });
  server.on("connect", (req, client, head) => {
    tunnels.push({ target: req.url ?? "", auth: req.headers["proxy-authorization"] });
    if (opts.refuse) return void client.end("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
    const [host, port] = (req.url ?? "").split(":");
    const upstream = connect(Number(port), host!, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tunnels,
    plain,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
}
