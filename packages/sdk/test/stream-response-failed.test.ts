// A Responses stream whose final event is `response.failed`, without usage: the call failed, however
// cleanly its stream ended (OpenAI's SDK raises on no such event), so it is recorded as the gateway records
// it: status error, the failure's code as its error_type, nothing charged. It was recorded an ok call of
// unknown cost (usage_unreadable): its run charged the worst case it held ($4 for a gpt-5 call); a
// background one, recorded as its submission, kept that hold until a poll found the response failed (an
// hour, without one: `followBackgroundMs: 0`), its failure recorded nowhere. A file of its own: the SDK
// records a response once per process, under the id its fixture gives it.
import { describe, expect, it } from "vitest";
import { responseEventId } from "../src/ids.js";
import { agentRun } from "../src/index.js";
import { clientsAgainstMock, NOTHING_HELD } from "./background-helpers.js";

const FIXTURE = "openai/responses.stream.gpt-5.reasoning.sse";

/** The mock, but a stream's `response.completed` is a `response.failed` (server_error), without usage. */
const failedAtTheEnd: typeof fetch = async (url, init) => {
  const res = await fetch(url, init);
  if (!String(res.headers.get("content-type")).includes("text/event-stream")) return res;
  const events = (await res.text()).split("\n\n").map((ev) => {
    if (!ev.includes('"response.completed"')) return ev;
    const data = JSON.parse(ev.slice(ev.indexOf("data: ") + 6));
    data.type = "response.failed";
    Object.assign(data.response, { status: "failed", error: { code: "server_error" }, usage: null });
    return `event: response.failed\ndata: ${JSON.stringify(data)}`;
  });
  return new Response(events.join("\n\n"), { status: res.status, headers: res.headers });
};

const clients = clientsAgainstMock({ fetch: failedAtTheEnd });
const { sent } = clients;

describe("SDK: a Responses stream whose final event is response.failed", () => {
  it.each([false, true])("background: %s: recorded failed, its run charged nothing", async (background) => {
    const headers = { "x-mock-case": `sdk-stream-failed-${background}`, "x-mock-fixture": FIXTURE };
    await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, async (run) => {
      const before = sent.length;
      const stream = await clients
        .wrapped()
        .responses.create(
          { model: "gpt-5", input: "Research caching", stream: true, background },
          { headers },
        );
      let last: { type: string; response: { id: string } } | undefined;
      for await (const ev of stream) last = ev as typeof last;
      expect(last?.type).toBe("response.failed");
      const id = last!.response.id;
      // Its one record (a background one's under its response id).
      expect(sent.slice(before)).toEqual([
        expect.objectContaining({
          kind: "llm",
          status: "error",
          error_type: "server_error",
          ...(background && { request_id: id, event_id: responseEventId(id) }),
        }),
      ]);
      expect(run.held).toEqual(NOTHING_HELD);
      expect(run.usage.cost_nanousd).toBe(0n);
    });
  });
});
