// Upstream calls through a corporate egress proxy (HTTPS_PROXY / HTTP_PROXY / NO_PROXY): a local CONNECT
// proxy on 127.0.0.1 stands in for it and tunnels to the mock upstream.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeEgress, type EgressProxy, egressProxyFromEnv } from "../src/gateway/config.js";
import {
  gatewayRecords,
  startConnectProxy,
  startSilentServer,
  startTestGateway,
  UNSENT_TIMEOUT,
} from "./helpers.js";
import { FX, fixture, sseText, startMockUpstream, withoutUsage } from "./mock-upstream.js";

type Gateway = Awaited<ReturnType<typeof startTestGateway>>;

const chat = (stream = false) =>
  JSON.stringify({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }], stream });

async function post(gw: Gateway, body: string) {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer sk-test" },
    body,
  });
  return { res, text: await res.text() };
}

describe("gateway behind an egress proxy", () => {
  let mock: Awaited<ReturnType<typeof startMockUpstream>>;
  let proxy: Awaited<ReturnType<typeof startConnectProxy>>;
  let refusing: Awaited<ReturnType<typeof startConnectProxy>>;
  const gateways: Gateway[] = [];
  const gatewayVia = async (egressProxy: EgressProxy) => {
    const gw = await startTestGateway(mock.url, { egressProxy });
    gateways.push(gw);
    return gw;
  };
  beforeAll(async () => {
    mock = await startMockUpstream({ chunkDelayMs: 0 });
    proxy = await startConnectProxy();
    refusing = await startConnectProxy({ refuse: true });
  });
  afterAll(async () => {
    for (const gw of gateways) await gw.stop();
    await proxy.close();
    await refusing.close();
    await mock.close();
  });

  it("sends upstream calls through the proxy's tunnel, with its credentials; replies and records are unchanged", async () => {
    const withCredentials = proxy.url.replace("//", "//ops:s3cret@");
    const gw = await gatewayVia({ httpProxy: withCredentials, httpsProxy: null, noProxy: null });
    const before = mock.requests.length;

    const whole = await post(gw, chat());
    expect(whole.res.status).toBe(200);
    expect(whole.text).toBe(fixture(FX.chat));
    const streamed = await post(gw, chat(true));
    expect(streamed.res.status).toBe(200);
    expect(streamed.text).toBe(withoutUsage(sseText(FX.chatStream))); // usage added upstream, stripped again

    expect(mock.requests.length).toBe(before + 2);
    const target = new URL(mock.url).host;
    expect(proxy.tunnels.length).toBeGreaterThan(0);
    for (const t of proxy.tunnels) {
      expect(t.target).toBe(target);
      expect(t.auth).toBe(`Basic ${Buffer.from("ops:s3cret").toString("base64")}`);
    }
    expect(proxy.plain).toEqual([]);
    const records = await gatewayRecords(gw.runtime);
    const ids = [whole.res, streamed.res].map((r) => r.headers.get("x-tollgate-event-id"));
    for (const id of ids)
      expect(records.find((r) => r.event_id === id)).toMatchObject({ status: "ok", priced: true });
  });

  it("a client's own Proxy-Authorization neither fails its call nor leaves the gateway", async () => {
    // A credential for a proxy in front of the gateway: undici's proxy agent refuses any request carrying
    // one, which made every such call a 502 that never reached the upstream.
    const gw = await gatewayVia({ httpProxy: proxy.url, httpsProxy: null, noProxy: null });
    const before = mock.requests.length;
    const tunnels = proxy.tunnels.length;
    for (const stream of [false, true]) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer sk-test",
          "proxy-authorization": "Basic Y2xpZW50OnByb3h5LXB3",
        },
        body: chat(stream),
      });
      expect(res.status).toBe(200);
      await res.text();
    }
    const sent = mock.requests.slice(before);
    expect(sent).toHaveLength(2);
    for (const r of sent) {
      expect(r.headers.authorization).toBe("Bearer sk-test");
      expect(r.headers["proxy-authorization"]).toBeUndefined();
    }
    expect(proxy.tunnels.length).toBeGreaterThan(tunnels); // through the proxy, which is told nothing of it
    for (const t of proxy.tunnels.slice(tunnels)) expect(t.auth).toBeUndefined();
  });

  it("reaches NO_PROXY hosts directly", async () => {
    const gw = await gatewayVia({ httpProxy: proxy.url, httpsProxy: null, noProxy: "localhost, 127.0.0.1" });
    const tunnels = proxy.tunnels.length;
    const { res } = await post(gw, chat());
    expect(res.status).toBe(200);
    expect(proxy.tunnels.length).toBe(tunnels);
  });

  it("a proxy that refuses the tunnel is the gateway's 502 in the provider's shape, recorded as a connection error", async () => {
    const gw = await gatewayVia({ httpProxy: refusing.url, httpsProxy: null, noProxy: null });
    const { res, text } = await post(gw, chat());
    expect(res.status).toBe(502);
    const error = JSON.parse(text).error;
    expect(error.type).toBe("api_error");
    expect(error.message).toMatch(/^upstream connection failed: .*407/);
    expect(refusing.tunnels.length).toBe(1);
    const rec = (await gatewayRecords(gw.runtime)).find(
      (r) => r.event_id === res.headers.get("x-tollgate-event-id"),
    );
    expect(rec).toMatchObject({ status: "error", http_status: null, error_type: "connection_error" });
  });

  it("a proxy that never answers CONNECT: 504 within the upstream timeout, $0 (nothing reached the upstream)", async () => {
    const silent = await startSilentServer();
    const url = silent.origin("http");
    const gw = await startTestGateway(mock.url, {
      egressProxy: { httpProxy: url, httpsProxy: null, noProxy: null },
      timeoutMs: 500,
    });
    gateways.push(gw);
    try {
      const started = Date.now();
      const { res, text } = await post(gw, chat());
      expect(Date.now() - started).toBeLessThan(5_000); // undici's own CONNECT wait is 300 s
      expect(res.status).toBe(504);
      expect(JSON.parse(text).error.message).toBe("upstream did not take the connection within 500 ms");
      const rec = (await gatewayRecords(gw.runtime)).find(
        (r) => r.event_id === res.headers.get("x-tollgate-event-id"),
      );
      expect(rec).toMatchObject(UNSENT_TIMEOUT);
    } finally {
      silent.close();
    }
  });

  it("a stream's client that leaves while the tunnel is being made, which then fails: not billed, not recorded", async () => {
    const silent = await startSilentServer();
    const gw = await startTestGateway(mock.url, {
      egressProxy: { httpProxy: silent.origin("http"), httpsProxy: null, noProxy: null },
      timeoutMs: 400,
    });
    gateways.push(gw);
    const left = async () => {
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      return /tollgate_gateway_requests_total\{[^}]*status="499"\} (\d+)/.exec(text)?.[1] ?? "0";
    };
    try {
      const leave = new AbortController();
      const call = fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sk-test" },
        body: chat(true),
        signal: leave.signal,
      }).catch((e: Error) => e.name);
      await new Promise((r) => setTimeout(r, 100));
      leave.abort();
      expect(await call).toBe("AbortError");
      // Done with it once the tunnel's wait (400 ms) is over: counted as a client that left.
      for (let i = 0; i < 100 && (await left()) === "0"; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await left()).toBe("1");
      // Nothing reached the upstream: no record with an estimated input (was: client_disconnected, billed).
      expect(await gatewayRecords(gw.runtime)).toEqual([]);
    } finally {
      silent.close();
    }
  });
});

describe("egress proxy settings", () => {
  it("reads HTTPS_PROXY, HTTP_PROXY and NO_PROXY, the lower-case name first (as curl does)", () => {
    expect(egressProxyFromEnv({})).toBeNull();
    expect(egressProxyFromEnv({ NO_PROXY: "internal" })).toBeNull(); // no proxy to bypass
    expect(
      egressProxyFromEnv({
        HTTPS_PROXY: "http://upper:3128",
        https_proxy: "http://lower:3128",
        no_proxy: ".corp,10.0.0.1:8080",
      }),
    ).toEqual({ httpsProxy: "http://lower:3128", httpProxy: null, noProxy: ".corp,10.0.0.1:8080" });
  });

  it("refuses a proxy that is not an http(s) URL, naming the variable and hiding the password", () => {
    expect(() => egressProxyFromEnv({ HTTP_PROXY: "proxy.corp:3128" })).toThrow(
      'HTTP_PROXY must be a proxy URL such as http://proxy.internal:3128, got "proxy.corp:3128"',
    );
    expect(() => egressProxyFromEnv({ HTTPS_PROXY: "socks5://ops:s3cret@proxy:1080" })).toThrow(
      'HTTPS_PROXY must be a proxy URL such as http://proxy.internal:3128, got "socks5://ops:***@proxy:1080"',
    );
  });

  it("says at start where calls go, without the password", () => {
    expect(
      describeEgress({ httpsProxy: "http://ops:s3cret@proxy:3128", httpProxy: null, noProxy: "localhost" }),
    ).toBe("upstream calls leave through HTTPS_PROXY http://ops:***@proxy:3128, except NO_PROXY localhost");
  });
});
