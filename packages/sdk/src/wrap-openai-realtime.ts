import { AsyncLocalStorage } from "node:async_hooks";
import {
  applyRealtimeSettings,
  type ExtractedUsage,
  extractFromResponse,
  fieldText,
  type RealtimeModels,
  realtimeResponseError,
  realtimeTranscriptionUsage,
} from "@tollgate/core";
import { AgentRunHeldError, AgentRunKilledError } from "./agent-run.js";
import { type CallSpec, TrackedCall } from "./instrument/call.js";
import { estimatorOf, sinkOf, type WrapOptions } from "./setup.js";
import { wrapOnce } from "./wrap-once.js";

/** What is used of the `openai` SDK's Realtime clients (`OpenAIRealtimeWS`, `OpenAIRealtimeWebSocket`). */
interface RealtimeLike {
  on(event: "event", listener: (event: { type: string }) => void): unknown;
  send(event: { type: string }): void;
  /** The connection (ws's WebSocket, or the platform's): its close ends the responses under way. */
  socket?: unknown;
}

/** Marks a session wrapped already: wrapped twice, it records each call once (as a wrapped client does). */
const WRAPPED = Symbol.for("tollgate.wrapped.realtime");

/**
 * Records the calls of an `openai` Realtime session, as the gateway records them: each response (its
 * `response.done` usage, the model the session names) and each input-audio transcription (a call of the
 * transcription model). They are attributed, and counted to their agent run, as calls made where the
 * session was wrapped. The session is returned as it was. Wrapped again with the same options, it is
 * returned as it is; with others, refused (wrapOnce): a session makes no copy of itself to wrap with them.
 */
export function wrapOpenAIRealtime<S extends RealtimeLike>(session: S, options: WrapOptions = {}): S {
  return wrapOnce("wrapOpenAIRealtime", session, options, instrumentRealtime);
}

function instrumentRealtime(session: RealtimeLike, options: WrapOptions): void {
  // Wrapped by another copy of this SDK (wrapOnce knows its own): recorded once all the same.
  const marked = session as RealtimeLike & { [WRAPPED]?: true };
  if (marked[WRAPPED]) return;
  Object.defineProperty(marked, WRAPPED, { value: true });
  const sink = sinkOf(options);
  const spec: CallSpec = {
    api: "openai.realtime",
    kind: "llm",
    provider: options.provider ?? "openai",
    estimateCost: estimatorOf(options),
  };
  // The scope (attribution, span, agent run) where the session was wrapped: events come outside it.
  const inScope = AsyncLocalStorage.snapshot();
  const open = new Map<string, TrackedCall>();
  // The connection's `model` until the session names one (a session wrapped after its session.created).
  const models: RealtimeModels = { model: modelOfUrl((session as { url?: unknown }).url), transcriber: null };
  const send = session.send.bind(session);
  /**
   * A call the server has started already (`cancel`: a response under way, to cancel if refused). One
   * its agent run refuses (killed, over a ceiling, or its calls in flight hold what is left: it cannot
   * wait) is recorded and its cost counted all the same, not as one of the run's calls; a response is
   * cancelled, as the gateway cancels one over a limit. Thrown here, the error left the socket's message
   * listener (uncaught) and the call was never recorded.
   */
  const call = (modelOfCall: string | null, cancel?: string) =>
    inScope(() => {
      const tracked = new TrackedCall(spec, { model: modelOfCall, stream: true }, sink);
      try {
        tracked.begin();
      } catch (e) {
        if (!(e instanceof AgentRunKilledError || e instanceof AgentRunHeldError)) throw e;
        if (cancel) send({ type: "response.cancel", response_id: cancel } as { type: string });
      }
      return tracked;
    });

  session.send = (event) => {
    if (event?.type === "session.update")
      applyRealtimeSettings(models, (event as { session?: unknown }).session, false);
    send(event);
  };
  session.on("event", (e) => {
    const event = e as { type: string } & Record<string, unknown>;
    switch (event.type) {
      case "session.created":
      case "session.updated":
        return applyRealtimeSettings(models, event.session, true);
      case "response.created": {
        const id = fieldText((event.response as { id?: unknown } | undefined)?.id);
        if (id && !open.has(id)) open.set(id, call(models.model, id));
        return;
      }
      case "response.done": {
        const response = event.response as Record<string, unknown> | undefined;
        const id = fieldText(response?.id);
        if (!response || !id) return;
        const tracked = open.get(id) ?? call(models.model);
        open.delete(id);
        tracked.finish({
          usage: usageOf(() => extractFromResponse("openai.realtime", response)),
          httpStatus: null,
          requestId: id,
          errorType: realtimeResponseError(response),
        });
        return;
      }
      case "conversation.item.input_audio_transcription.completed": {
        // Tokens, or whisper-1's seconds of audio (priced by the hour); an event without usage: cost unknown.
        call(models.transcriber ?? "unknown").finish({
          usage: realtimeTranscriptionUsage(event),
          httpStatus: null,
          requestId: fieldText(event.item_id),
          errorType: null,
        });
      }
    }
  });
  // Closed with responses under way (the app's close, a dropped connection): no response.done will come.
  // Each is recorded cut off, as the gateway records it (its cost not known).
  const socket = session.socket as
    | { addEventListener?(type: "close", listener: () => void): void }
    | undefined;
  socket?.addEventListener?.("close", () => {
    for (const [id, tracked] of open)
      tracked.finish({ usage: null, httpStatus: null, requestId: id, errorType: "session_closed" });
    open.clear();
  });
}

/** A usage read that does not throw: an unknown shape records the call without it. */
function usageOf(read: () => ExtractedUsage): ExtractedUsage | null {
  try {
    return read();
  } catch {
    return null;
  }
}

/** The `model` of a Realtime connection's URL (a sideband connection to a call has none). */
function modelOfUrl(url: unknown): string | null {
  if (!(url instanceof URL) && typeof url !== "string") return null;
  try {
    return fieldText(new URL(String(url)).searchParams.get("model"));
  } catch {
    return null;
  }
}
