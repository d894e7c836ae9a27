// Attribution headers as a hostile client may send them: many, or named to reach an object's prototype.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { splitHeaders } from "../src/gateway/headers.js";
import { startTestGateway } from "./helpers.js";
import { startMockUpstream } from "./mock-upstream.js";

type Gateway = Awaited<ReturnType<typeof startTestGateway>>;
type Mock = Awaited<ReturnType<typeof startMockUpstream>>;

/** `n` x-tollgate-meta-* headers: ~1,990 fit Node's 2,000 headers and the gateway's 64 KB. */
function metaHeaders(n: number): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let i = 0; i < n; i++) headers[`x-tollgate-meta-k${i}`] = "v";
  return headers;
}

describe("gateway attribution headers", () => {
  let mock: Mock;
  let gw: Gateway;
  beforeAll(async () => {
    mock = await startMockUpstream({ chunkDelayMs: 0 });
    gw = await startTestGateway(mock.url);
  });
  afterAll(async () => {
    await gw.stop();
    await mock.close();
  });

  it("1,990 metadata headers are split in linear time (each copied the metadata so far: ~0.4 s)", () => {
    const headers = metaHeaders(1_990);
    splitHeaders(headers); // warm
    const started = performance.now();
    const { attribution } = splitHeaders(headers);
    expect(performance.now() - started).toBeLessThan(50);
    expect(Object.keys(attribution.metadata!)).toHaveLength(1_990);
    expect(attribution.metadata!.k1989).toBe("v");
  });

  it("too many metadata headers, or one named __proto__, are refused 400 and nothing goes upstream", async () => {
    const send = (headers: Record<string, string>) =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sk-test", ...headers },
        body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
      });
    const many = await send(metaHeaders(1_990));
    expect(many.status).toBe(400);
    expect(((await many.json()) as { error: { message: string } }).error.message).toContain(
      "at most 64 keys",
    );
    const proto = await send({ "x-tollgate-meta-__proto__": "x" });
    expect(proto.status).toBe(400);
    expect(((await proto.json()) as { error: { message: string } }).error.message).toContain("__proto__");
    expect(mock.requests).toHaveLength(0);
  });
});
