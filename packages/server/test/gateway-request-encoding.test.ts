// A model call whose body comes compressed (content-encoding): read, priced and limited as a plain one.
import { brotliCompressSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayRecords, startTestGateway } from "./helpers.js";
import { startMockUpstream } from "./mock-upstream.js";

type Gateway = Awaited<ReturnType<typeof startTestGateway>>;
type Mock = Awaited<ReturnType<typeof startMockUpstream>>;

const messages = [{ role: "user", content: "hi" }];

async function post(url: string, body: Buffer, encoding: string, caseId: string) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "content-encoding": encoding,
      authorization: "Bearer sk-test",
      "x-test-case": caseId,
    },
    body,
  });
  return { status: res.status, text: await res.text() };
}

describe("gateway: a model call's compressed request body", () => {
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
  const sentFor = (id: string) => mock.requests.filter((r) => r.headers["x-test-case"] === id);

  it("a gzip stream request is read as sent plain: streamed, usage asked for and stripped, priced", async () => {
    const body = gzipSync(JSON.stringify({ model: "gpt-4o-mini", messages, stream: true }));
    const { status, text } = await post(gw.url, body, "gzip", "gzip-stream");
    expect(status).toBe(200);
    expect(text).toContain("data: [DONE]");
    expect(text).not.toContain('"usage"'); // the client did not ask for it
    const [sent] = sentFor("gzip-stream");
    expect(sent!.headers["content-encoding"]).toBeUndefined(); // it went decoded
    expect(sent!.body).toMatchObject({
      model: "gpt-4o-mini",
      stream: true,
      stream_options: { include_usage: true },
    });
    const rec = (await gatewayRecords(gw.runtime)).find((r) => r.request_id && r.stream);
    expect(rec).toMatchObject({
      model_requested: "gpt-4o-mini",
      stream: true,
      status: "ok",
      priced: true,
      cost_source: "computed",
    });
  });

  it("a br body (and a list of codings, undone in reverse) is read alike", async () => {
    const json = JSON.stringify({ model: "gpt-4o-mini", messages });
    expect((await post(gw.url, brotliCompressSync(json), "br", "br")).status).toBe(200);
    const both = brotliCompressSync(gzipSync(json));
    expect((await post(gw.url, both, "gzip, br", "gzip-br")).status).toBe(200);
    for (const id of ["br", "gzip-br"]) expect(sentFor(id)[0]!.body.model, id).toBe("gpt-4o-mini");
  });

  it("a coding the gateway cannot read is refused 415, a bad or too big one 400 / 413: nothing forwarded", async () => {
    const json = JSON.stringify({ model: "gpt-4o-mini", messages });
    const zstd = await post(gw.url, Buffer.from(json), "zstd", "zstd");
    expect(zstd.status).toBe(415);
    expect(JSON.parse(zstd.text).error.message).toContain("zstd");
    expect((await post(gw.url, Buffer.from(json), "gzip", "not-gzip")).status).toBe(400);
    // 33 MB of spaces is ~32 KB of gzip: decoded past the 32 MB a model call may send.
    const bomb = gzipSync(Buffer.alloc(33 * 1024 * 1024, 32));
    expect((await post(gw.url, bomb, "gzip", "bomb")).status).toBe(413);
    for (const id of ["zstd", "not-gzip", "bomb"]) expect(sentFor(id), id).toHaveLength(0);
  });
});
