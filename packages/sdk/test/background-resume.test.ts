// A background stream resumed through a wrapped client (`responses.retrieve(id, { stream: true })`): the
// response its final event carries is recorded once, as a poll that found it finished records it. A file of
// its own: the SDK records a response once per process, under the id its fixture gives it.

import { setTimeout as sleep } from "node:timers/promises";
import { extractFromSse, USAGE_FIELDS } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { collect } from "../../server/test/helpers.js";
import { fixture } from "../../server/test/mock-upstream.js";
import { agentRun, withAttribution } from "../src/index.js";
import { clientsAgainstMock, cutBackgroundStream, type StreamEvent } from "./background-helpers.js";

const REL = "conformance/payloads/openai/responses.stream.gpt-5.2.reasoning.sse";
const CASE = { "x-mock-case": "sdk-resume", "x-mock-fixture": REL };

const clients = clientsAgainstMock();
const { sent } = clients;

describe("SDK: a background stream resumed", () => {
  it("is billed once, from the resumed stream's final event, for its submission's scope; the app reads the same events", async () => {
    const openai = clients.wrapped();
    const plain = clients.plain();
    const seen = await withAttribution({ feature: "resumable" }, () =>
      cutBackgroundStream(openai, "gpt-5.2", CASE),
    );
    const id = seen[0]!.response!.id;
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ kind: "other", request_id: id, feature: "resumable" });
    const query = { stream: true as const, starting_after: seen.at(-1)!.sequence_number };

    // Cut again before its end: nothing is known to have finished, nothing billed.
    await expect(
      collect(
        await openai.responses.retrieve(id, query, {
          headers: { ...CASE, "x-mock-scenario": "reset-mid-stream" },
        }),
      ),
    ).rejects.toThrow();
    await sleep(50);
    expect(sent).toHaveLength(1);

    const rest = await collect(await openai.responses.retrieve(id, query, { headers: CASE }));
    expect(rest).toEqual(await collect(await plain.responses.retrieve(id, query, { headers: CASE })));
    expect(rest.at(-1)).toMatchObject({ type: "response.completed", response: { id } });
    expect(sent).toHaveLength(2);
    const expected = extractFromSse("openai.responses", fixture(REL))!;
    expect(sent[1]).toMatchObject({ kind: "llm", request_id: id, feature: "resumable", ts_end: null });
    for (const f of USAGE_FIELDS) expect(sent[1]![f] ?? 0, f).toBe(expected.usage[f]);

    // Resumed or polled again: nothing more.
    await collect(await openai.responses.retrieve(id, query, { headers: CASE }));
    await openai.responses.retrieve(id, {}, { headers: CASE });
    await sleep(50);
    expect(sent).toHaveLength(2);
  });

  it("still being read when a resumption elsewhere reaches its end: billed once, for the submission's scope and agent run", async () => {
    const openai = clients.wrapped();
    // A fixture of its own: this file's first case recorded the other one's response.
    const mockCase = {
      "x-mock-case": "sdk-running",
      "x-mock-fixture": "openai/responses.stream.gpt-5.reasoning.sse",
    };
    const before = sent.length;
    let costUsd = "";
    await agentRun({ type: "researcher", limits: { max_cost_usd: "100" } }, (run) =>
      withAttribution({ feature: "resumable" }, async () => {
        const stream = await openai.responses.create(
          { model: "gpt-5", input: "go", stream: true, background: true },
          { headers: { ...mockCase, "x-mock-chunk-delay-ms": "20" } },
        );
        const events = stream[Symbol.asyncIterator]();
        const first = (await events.next()).value as StreamEvent;
        // Resumed by another part of the app (its own scope, outside the run) to its end.
        const rest = await withAttribution({ feature: "poller" }, async () =>
          collect(
            await openai.responses.retrieve(
              first.response!.id,
              { stream: true, starting_after: first.sequence_number },
              { headers: mockCase },
            ),
          ),
        );
        expect(rest.at(-1)).toMatchObject({ type: "response.completed" });
        while (!(await events.next()).done) {}
        costUsd = run.costUsd;
      }),
    );
    const mine = sent.slice(before);
    expect(mine.map((r) => [r.kind, r.feature])).toEqual([
      ["llm", "resumable"], // the resumption's end: the response, for its submission
      ["other", "resumable"], // the stream that submitted it, $0
    ]);
    expect(mine[0]!.agent_run_id).toBe(mine[1]!.agent_run_id);
    expect(mine[0]!.output_tokens).toBe(469);
    expect(Number(costUsd)).toBeGreaterThan(0);
  });
});
