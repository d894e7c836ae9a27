// A background stream the app stops reading at its final event (`break` on response.completed): the
// response finished, and its usage came with that event, so it is billed then, as a stream read to its end.
// A file of its own: the SDK records a response once per process, under the id its fixture gives it.

import { extractFromSse, USAGE_FIELDS } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { fixture } from "../../server/test/mock-upstream.js";
import { clientsAgainstMock } from "./background-helpers.js";

const REL = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";

const clients = clientsAgainstMock();
const { sent } = clients;

describe("SDK: a background stream left at its final event", () => {
  it("is billed from that event at once, not left for a poll that may never come", async () => {
    const stream = await clients
      .wrapped()
      .responses.create(
        { model: "gpt-5.2", input: "Tallest mountain in Alberta?", stream: true, background: true },
        { headers: { "x-mock-case": "sdk-break-at-end", "x-mock-fixture": REL } },
      );
    for await (const ev of stream) if (ev.type === "response.completed") break;
    expect(sent).toHaveLength(1);
    const expected = extractFromSse("openai.responses", fixture(REL))!;
    expect(sent[0]).toMatchObject({ kind: "llm", status: "ok", stream: true });
    for (const f of USAGE_FIELDS) expect(sent[0]![f] ?? 0, f).toBe(expected.usage[f]);
  });
});
