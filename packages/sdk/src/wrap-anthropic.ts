import type { RecordSink } from "./instrument/call.js";
import { wrapBatchResults, wrapDerivedClients, wrapModelCall } from "./instrument/wrap.js";
import { estimatorOf, roomOf, sinkOf, type WrapOptions } from "./setup.js";
import { wrapOnce } from "./wrap-once.js";

interface AnthropicLike {
  messages?: { batches?: unknown };
  beta?: { messages?: { batches?: unknown } };
}

/**
 * Records every call of an `@anthropic-ai/sdk` client (`messages.create`, streamed or not, and the
 * `messages.stream()` helper, which calls it) as a Tollgate call record, and a message batch's calls as
 * the app reads its results (`messages.batches.results`); the client is returned as it was. Calls are attributed from the enclosing `withAttribution` / `traced` / `agentRun` scopes.
 * Wrapped again with other options, it is a copy of the client that is wrapped and returned (wrapOnce).
 */
export function wrapAnthropic<C extends object>(client: C, options: WrapOptions = {}): C {
  return wrapOnce("wrapAnthropic", client, options, instrumentAnthropic);
}

function instrumentAnthropic(client: object, options: WrapOptions): void {
  const c = client as AnthropicLike;
  const sink: RecordSink = sinkOf(options);
  const spec = {
    api: "anthropic.messages",
    kind: "llm",
    provider: options.provider ?? "anthropic",
    estimateCost: estimatorOf(options),
  } as const;
  wrapModelCall(c.messages, "create", spec, sink);
  wrapModelCall(c.beta?.messages, "create", spec, sink);
  wrapBatchResults(c.messages?.batches, spec, sink, roomOf(options));
  wrapBatchResults(c.beta?.messages?.batches, spec, sink, roomOf(options));
  wrapDerivedClients(client, (derived) => wrapAnthropic(derived, options));
}
