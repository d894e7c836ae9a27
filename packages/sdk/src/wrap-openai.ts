import { defaultImageModel, refusesStreamOptions, StreamOptionsRefusals } from "@tollgate/core";
import { backgroundPolls } from "./instrument/background.js";
import type { CallSpec, RecordSink } from "./instrument/call.js";
import {
  type Prepare,
  wrapDerivedClients,
  wrapFileContent,
  wrapLateHelper,
  wrapModelCall,
  wrapRetrieve,
} from "./instrument/wrap.js";
import { estimatorOf, roomOf, sinkOf, type WrapOptions } from "./setup.js";
import { MAX_TIMER_MS } from "./timer-ms.js";
import { wrapOnce } from "./wrap-once.js";

interface OpenAILike {
  chat?: { completions?: unknown };
  completions?: unknown;
  responses?: unknown;
  embeddings?: unknown;
  images?: unknown;
  audio?: { transcriptions?: unknown; speech?: unknown };
  files?: unknown;
}

/**
 * Records every call of an `openai` client (chat completions, Responses and their compactions, embeddings, legacy
 * completions, image generations and edits, audio transcriptions, speech; streamed or not) as a Tollgate call record; a background response's cost, when
 * `responses.retrieve` finds it finished (the app's poll, or the client's own: `followBackgroundMs`); a batch's calls, as the app reads its output file
 * (`files.content`). The client is returned as it was, same type
 * and behaviour: streams still stream, errors are the SDK's own. Calls are attributed from the enclosing
 * `withAttribution` / `traced` / `agentRun` scopes. Wrapped again with other options, it is a copy of the
 * client that is wrapped and returned (wrapOnce).
 */
export function wrapOpenAI<C extends object>(client: C, options: WrapOptions = {}): C {
  return wrapOnce("wrapOpenAI", client, options, instrumentOpenAI);
}

function instrumentOpenAI(client: object, options: WrapOptions): void {
  const c = client as OpenAILike;
  const provider = options.provider ?? "openai";
  const sink: RecordSink = sinkOf(options);
  const spec = (api: CallSpec["api"], kind: CallSpec["kind"] = "llm"): CallSpec => ({
    api,
    kind,
    provider,
    estimateCost: estimatorOf(options),
  });
  wrapModelCall(c.chat?.completions, "create", spec("openai.chat"), sink, withStreamUsage);
  wrapModelCall(c.completions, "create", spec("openai.completions"), sink, withStreamUsage);
  // Their calls are made a tick after they return, maybe once the run.llm(…) that returned them settled.
  wrapLateHelper(c.chat?.completions, "stream");
  wrapLateHelper(c.chat?.completions, "runTools");
  const responses = {
    ...spec("openai.responses"),
    background: backgroundPolls(c.responses, followMsOf(options.followBackgroundMs)),
  };
  wrapModelCall(c.responses, "create", responses, sink);
  // A compaction runs the model over the conversation, billed as a response (its reply names no model).
  wrapModelCall(c.responses, "compact", spec("openai.responses"), sink);
  wrapRetrieve(c.responses, responses, sink);
  wrapLateHelper(c.responses, "stream");
  wrapFileContent(c.files, spec("openai.chat"), sink, roomOf(options)); // a batch output file: calls of any API
  wrapModelCall(c.embeddings, "create", spec("openai.embeddings", "embedding"), sink);
  const images = (operation: "generation" | "edit"): CallSpec => ({
    ...spec("openai.images"),
    defaultModel: (body) => defaultImageModel(operation, body),
    upload: operation === "edit", // its images and mask as files
  });
  wrapModelCall(c.images, "generate", images("generation"), sink);
  wrapModelCall(c.images, "edit", images("edit"), sink);
  wrapModelCall(c.audio?.transcriptions, "create", { ...spec("openai.transcriptions"), upload: true }, sink);
  wrapModelCall(c.audio?.speech, "create", spec("openai.speech"), sink);
  wrapDerivedClients(client, (derived) => wrapOpenAI(derived, options));
}

/** How long a background response may go unpolled before the client polls it itself (WrapOptions). */
const FOLLOW_BACKGROUND_MS = 30_000;

/**
 * `followBackgroundMs` checked: a NaN, negative or overlong wait would poll every millisecond, or never, by
 * mistake (Node fires a timer set past MAX_TIMER_MS after 1 ms).
 */
function followMsOf(ms: unknown): number {
  if (ms === undefined) return FOLLOW_BACKGROUND_MS;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0 || ms > MAX_TIMER_MS)
    throw new TypeError(
      `followBackgroundMs must be a number of ms, 0 or more (0: never), at most ${MAX_TIMER_MS}, got ${String(ms)}`,
    );
  return ms;
}

/** The upstreams (upstreamOf) that refused the stream_options asked for a stream's usage, as the gateway's. */
const refusedStreamOptions = new StreamOptionsRefusals();

/**
 * OpenAI streams report usage only when asked (`stream_options.include_usage`): ask, and hide what that
 * adds (the final usage-only chunk, `usage: null` on every chunk) unless the app asked itself — exactly
 * as the gateway does, so both record the same. An upstream that refuses it (Azure OpenAI before
 * api-version 2024-09-01-preview) gets the request as the app made it, then and from then on: its streams'
 * records have no usage.
 */
const withStreamUsage: Prepare = (body, upstream) => {
  const opts = body.stream_options as { include_usage?: unknown } | undefined | null;
  if (body.stream !== true || opts?.include_usage != null) return { body };
  if (upstream !== null && refusedStreamOptions.has(upstream)) return { body };
  return {
    body: { ...body, stream_options: { ...opts, include_usage: true } },
    hideEvent: (event) => {
      const chunk = event as { usage?: unknown; choices?: unknown[] };
      if (chunk.usage == null) {
        delete chunk.usage;
        return false;
      }
      return Array.isArray(chunk.choices) && chunk.choices.length === 0;
    },
    // Only the app's request without stream_options of its own: a refusal naming them may be of the app's
    // (a mistake in them), its answer the app's, and that upstream still to be asked for usage.
    refusedBy: (err) => opts == null && mayRefuseUsage(err),
    // Remembered once the app's own request was taken: a refusal the error could not name may be another's.
    refuses: () => {
      if (upstream !== null) refusedStreamOptions.add(upstream);
    },
  };
};

/**
 * Whether an SDK error may be an upstream's refusal of the stream_options asked: one naming them, or a 422
 * whose body the SDK kept no text of (openai-node keeps only an OpenAI-shaped `error`; a pydantic server
 * that forbids unknown fields answers `{"detail": […]}`, its message then "422 status code (no body)").
 */
function mayRefuseUsage(err: unknown): boolean {
  const { status, message, error } = (err ?? {}) as { status?: unknown; message?: unknown; error?: unknown };
  if (typeof status !== "number") return false;
  return refusesStreamOptions(status, String(message)) || (status === 422 && error === undefined);
}
