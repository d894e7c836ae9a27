import { Agent, request } from "node:http";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { classify } from "../src/gateway/routes.js";
import { createKey, gatewayRecords, startTestGateway } from "./helpers.js";
import { startMockUpstream } from "./mock-upstream.js";

type Gateway = Awaited<ReturnType<typeof startTestGateway>>;
type Mock = Awaited<ReturnType<typeof startMockUpstream>>;

const chat = JSON.stringify({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] });

async function post(url: string, headers: Record<string, string>, body: string | Buffer = chat) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer sk-test", ...headers },
    body,
  });
  return { status: res.status, json: (await res.json()) as { error?: { type: string; message: string } } };
}

describe("gateway controls", () => {
  let mock: Mock;
  let open: Gateway;
  let locked: Gateway;
  beforeAll(async () => {
    mock = await startMockUpstream({ chunkDelayMs: 0 });
    open = await startTestGateway(mock.url);
    locked = await startTestGateway(mock.url, { requireKey: true });
  });
  afterAll(async () => {
    await open.stop();
    await locked.stop();
    await mock.close();
  });

  it("refuses a body over 32 MB with 413 in the provider's shape, and forwards nothing", async () => {
    const before = mock.requests.length;
    const { status, json } = await post(open.url, {}, Buffer.alloc(33 * 1024 * 1024, 32));
    expect(status).toBe(413);
    expect(json.error?.type).toBe("invalid_request_error");
    expect(mock.requests.length).toBe(before);
  });

  it("a body over 32 MB sent whole: its client reads the 413 rather than a reset, and the connection serves the next request", async () => {
    // A raw client that writes its whole body before reading, as python-requests does. Answered and closed
    // while the body still came, the unread bytes reset the connection under it (EPIPE, the 413 often lost).
    const sock = connect(Number(new URL(open.url).port), "127.0.0.1");
    let reply = "";
    sock.on("data", (d) => (reply += d));
    sock.on("error", () => {});
    let connected = true;
    const closed = new Promise((r) => sock.once("close", r)).then(() => (connected = false));
    const size = 40 * 1024 * 1024;
    sock.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
        `authorization: Bearer sk-test\r\ncontent-length: ${size}\r\n\r\n`,
    );
    const chunk = Buffer.alloc(1024 * 1024, 32);
    for (let sent = 0; sent < size && connected; sent += chunk.length)
      if (!sock.write(chunk)) await Promise.race([new Promise((r) => sock.once("drain", r)), closed]);
    expect(connected).toBe(true);
    sock.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    await Promise.race([closed, vi.waitFor(() => expect(reply).toContain('{"status":"ok"}'))]);
    const [head413, rest] = reply.split("\r\n\r\n");
    expect(head413).toMatch(/^HTTP\/1\.1 413 /);
    expect(head413).not.toMatch(/connection: close/i);
    expect(rest).toContain('"invalid_request_error"');
    expect(reply).toMatch(/\}HTTP\/1\.1 200 OK\r\n[\s\S]*\{"status":"ok"\}$/); // on the same connection
    sock.destroy();
  });

  it("a body over 32 MB whose rest does not come: its 413 says connection: close, and the connection closes", async () => {
    const sock = connect(Number(new URL(open.url).port), "127.0.0.1");
    let reply = "";
    sock.on("data", (d) => (reply += d));
    sock.on("error", () => {});
    const closed = new Promise((r) => sock.once("close", r));
    sock.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
        `authorization: Bearer sk-test\r\ncontent-length: ${40 * 1024 * 1024}\r\n\r\n`,
    );
    sock.write(Buffer.alloc(33 * 1024 * 1024, 32)); // past the limit, then nothing more
    await closed;
    expect(reply).toMatch(/^HTTP\/1\.1 413 /);
    expect(reply.split("\r\n\r\n")[0]).toMatch(/\r\nconnection: close(\r\n|$)/i);
  });

  it("forwards a body byte for byte however it arrives: whole, in pieces, or chunked (one keep-alive connection)", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    /** Sends `parts` with a pause between them; `length` false sends the body chunked. */
    const send = (parts: string[], length: boolean) =>
      new Promise<number>((resolve, reject) => {
        const total = parts.join("");
        const req = request(
          `${open.url}/v1/chat/completions`,
          {
            method: "POST",
            agent,
            headers: {
              "content-type": "application/json",
              authorization: "Bearer sk-test",
              ...(length ? { "content-length": String(Buffer.byteLength(total)) } : {}),
            },
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("socket", (s) => sockets.add(s));
        req.on("error", reject);
        const write = (i: number) => {
          if (i === parts.length) return req.end();
          req.write(parts[i]);
          setTimeout(() => write(i + 1), 20);
        };
        write(0);
      });
    const body = JSON.stringify({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "héllo ✓" }] });
    const cut = [body.slice(0, 9), body.slice(9, 30), body.slice(30)];
    const before = mock.requests.length;
    try {
      expect(await send([body], true)).toBe(200);
      expect(await send(cut, true)).toBe(200);
      expect(await send(cut, false)).toBe(200);
      expect(await send([body], true)).toBe(200); // the connection is still in a sound state
    } finally {
      agent.destroy();
    }
    expect(sockets.size).toBe(1);
    expect(mock.requests.slice(before).map((r) => r.rawBody)).toEqual([body, body, body, body]);
  });

  it("refuses a malformed x-tollgate-retries instead of guessing", async () => {
    for (const bad of ["lots", "", " ", "0x2", "1e1", "-1", "11"]) {
      const { status, json } = await post(open.url, { "x-tollgate-retries": bad });
      expect(status, JSON.stringify(bad)).toBe(400);
      expect(json.error?.message).toMatch(/x-tollgate-retries must be an integer 0..10/);
    }
  });

  it("refuses an unknown named upstream, one named like an Object.prototype property too, saying which there are", async () => {
    const before = mock.requests.length;
    for (const name of ["nowhere", "constructor", "__proto__", "toString"]) {
      const { status, json } = await post(open.url, { "x-tollgate-upstream": name });
      expect(status, name).toBe(400);
      expect(json.error?.message).toBe(
        `unknown x-tollgate-upstream ${JSON.stringify(name)}: this gateway has no named upstreams ` +
          "(serve --upstreams FILE); leave the header out for the default upstream",
      );
    }
    expect(mock.requests.length).toBe(before);
    const named = await startTestGateway(mock.url, {
      upstreams: {
        "azure-east": { provider: "azure", baseUrl: `${mock.url}/v1`, headers: {} },
        homegrown: { provider: "homegrown", baseUrl: `${mock.url}/v1`, headers: {} },
      },
    });
    try {
      const { status, json } = await post(named.url, { "x-tollgate-upstream": "azure-west" });
      expect(status).toBe(400);
      expect(json.error?.message).toBe(
        'unknown x-tollgate-upstream "azure-west": use one of azure-east, homegrown ' +
          "(serve --upstreams FILE), or leave the header out for the default upstream",
      );
    } finally {
      await named.stop();
    }
    expect(mock.requests.length).toBe(before);
  });

  it("records a call whose model or service tier the record could not take as sent: cut to its limit, made valid Unicode", async () => {
    const longModel = `${"m".repeat(255)}😀`; // the cut at 256 units falls inside the emoji's surrogate pair
    const cases = [
      {
        body: { model: "gpt-4.1-nano", service_tier: "t".repeat(80) },
        model: "gpt-4.1-nano",
        tier: "default", // the tier the reply says it was served on wins over the one asked for
      },
      { body: { model: longModel }, model: `${"m".repeat(255)}\ufffd`, tier: "default" },
      { body: { model: "gpt-\ud800-nano" }, model: "gpt-\ufffd-nano", tier: "default" },
    ];
    for (const c of cases) {
      const res = await fetch(`${open.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sk-test" },
        body: JSON.stringify({ ...c.body, messages: [{ role: "user", content: "hi" }] }),
      });
      expect(res.status).toBe(200);
      await res.text();
      const id = res.headers.get("x-tollgate-event-id");
      const rec = (await gatewayRecords(open.runtime)).find((r) => r.event_id === id);
      expect(rec, JSON.stringify(c.body).slice(0, 80)).toMatchObject({
        status: "ok",
        model_requested: c.model,
        service_tier: c.tier,
        priced: true,
      });
    }
  });

  it("with requireKey: no key → 401; a read key → 403; a gateway key → through, recorded in its workspace", async () => {
    expect((await post(locked.url, {})).status).toBe(401);
    expect((await post(locked.url, { "x-tollgate-key": "tg_nope" })).status).toBe(401);
    const read = await createKey(locked.runtime.app, locked.runtime.rootToken, "acme", "read");
    expect((await post(locked.url, { "x-tollgate-key": read.json.key })).status).toBe(403);
    const gw = await createKey(locked.runtime.app, locked.runtime.rootToken, "acme", "gateway");
    expect((await post(locked.url, { "x-tollgate-key": gw.json.key })).status).toBe(200);
    await locked.runtime.recorder.flush();
    expect(await locked.runtime.store.count({ workspaceId: "acme" })).toBe(1);
    expect(await locked.runtime.store.count({ workspaceId: "default" })).toBe(0);
  });
});

describe("gateway paths", () => {
  it("sends a shared pass-through path to Anthropic when the client speaks Anthropic (its version or key header)", () => {
    expect(classify("/v1/models", {})?.family).toBe("openai");
    expect(classify("/v1/models", { "anthropic-version": "2023-06-01" })?.family).toBe("anthropic");
    // Its key alone says so too: an Anthropic key must never reach OpenAI.
    expect(classify("/v1/models", { "x-api-key": "sk-ant-xyz" })?.family).toBe("anthropic");
  });

  it("only a POST to a model path is a model call: a GET there (stored completions) passes through", () => {
    expect(classify("/v1/chat/completions", {}, "POST")).toMatchObject({ api: "openai.chat", kind: "llm" });
    expect(classify("/v1/chat/completions?limit=2", {}, "GET")).toMatchObject({
      api: null,
      kind: "other",
      family: "openai",
      upstreamPath: "/chat/completions?limit=2",
    });
    expect(classify("/v1/messages", {}, "GET")).toMatchObject({
      api: null,
      kind: "other",
      family: "anthropic",
    });
  });

  it("a model path spelt otherwise (escaped, doubled or trailing slashes) is still a model call, sent on its own path", () => {
    for (const spelt of ["/v1/chat/%63ompletions", "//v1//chat/completions/", "/v1/chat%2Fcompletions?x=1"])
      expect(classify(spelt, {}, "POST"), spelt).toMatchObject({
        api: "openai.chat",
        kind: "llm",
        upstreamPath: spelt.endsWith("?x=1") ? "/chat/completions?x=1" : "/chat/completions",
      });
    expect(classify("/v1/chat/%zzcompletions", {}, "POST")).toBeNull(); // does not decode: not proxied
    expect(classify("/v1/%65vents", {}, "POST")).toBeNull(); // Tollgate's own, however spelt
  });

  it("a model path spelt with dot segments, a backslash or a fragment is still a model call, sent on its own path", async () => {
    // An upstream that parses its target as a URL (Cloudflare's normalization, a WHATWG URL) serves these as
    // a chat completion: passed through, that call went unpriced and unlimited.
    const spellings = [
      "/v1/chat/./completions",
      "/v1/./chat/completions/.",
      "/v1/chat/%2e/completions",
      "/v1/chat\\completions",
      "/v1/chat/completions#x",
      "/v1/chat/completions?x=1#y",
    ];
    for (const spelt of spellings)
      expect(classify(spelt, {}, "POST"), spelt).toMatchObject({
        api: "openai.chat",
        kind: "llm",
        upstreamPath: spelt.includes("?") ? "/chat/completions?x=1" : "/chat/completions",
      });
    expect(classify("/v1/models#x", {}, "GET")?.upstreamPath).toBe("/models");
    // Nor does a backslash climb out of /v1 (a WHATWG URL reads `..\..\x` as `../../x`).
    for (const climb of ["/v1/models/..\\..\\x", "/v1/models/..%5C..%5Cx"])
      expect(classify(climb, {}, "GET"), climb).toBeNull();
    const mock = await startMockUpstream({ chunkDelayMs: 0 });
    const gw = await startTestGateway(mock.url);
    try {
      const { port } = new URL(gw.url);
      for (const path of spellings) {
        // node:http sends the path as written (fetch would tidy it first).
        const status = await new Promise<number>((resolve, reject) => {
          const req = request({ host: "127.0.0.1", port, path, method: "POST" }, (res) =>
            res.resume().on("end", () => resolve(res.statusCode ?? 0)),
          );
          req.setHeader("content-type", "application/json");
          req.setHeader("authorization", "Bearer sk-test");
          req.on("error", reject);
          req.end(chat);
        });
        expect(status, path).toBe(200);
      }
      expect(mock.requests.map((r) => r.path)).toEqual(
        spellings.map((s) => (s.includes("?") ? "/v1/chat/completions?x=1" : "/v1/chat/completions")),
      );
      const records = await gatewayRecords(gw.runtime);
      expect(records).toHaveLength(spellings.length);
      for (const r of records) expect(r).toMatchObject({ kind: "llm", api: "openai.chat", priced: true });
    } finally {
      await gw.stop();
      await mock.close();
    }
  });

  it("a pass-through path goes upstream as the client sent it after its /v1, however it spelt that", () => {
    for (const [spelt, upstream] of [
      ["/v1/models", "/models"],
      ["//v1/models", "/models"],
      ["/%761/files/file-abc/content", "/files/file-abc/content"],
      ["/%76%31/models", "/models"],
      ["//v1/messages/count_tokens?beta=true", "/messages/count_tokens?beta=true"],
      ["/v1/files/a%2Fb/content?x=%20", "/files/a%2Fb/content?x=%20"], // escapes kept
      ["/v1//files", "//files"],
    ] as const)
      expect(classify(spelt, {}, "GET")?.upstreamPath, spelt).toBe(upstream);
  });

  it("does not proxy paths that climb out of /v1", async () => {
    const mock = await startMockUpstream({ chunkDelayMs: 0 });
    const gw = await startTestGateway(mock.url);
    try {
      for (const path of ["/v1/../admin", "/v1/%2e%2e/admin", "/v1/models/../../x"]) {
        const res = await fetch(`${gw.url}${path}`, { headers: { authorization: "Bearer sk-test" } });
        expect(res.status, path).toBe(404);
      }
      expect(mock.requests).toHaveLength(0);
    } finally {
      await gw.stop();
      await mock.close();
    }
  });
});
