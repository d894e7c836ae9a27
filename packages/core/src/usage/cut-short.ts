import { type TranscriptionBilling, worstCaseUsage } from "../limits/estimate.js";
import { advisorToolModel, estimatedAdvisorCall } from "./advisor.js";
import { estimatedImageGeneration } from "./image-tool-estimate.js";
import { speechUsage } from "./speech.js";
import type { StreamShown } from "./stream.js";
import { atLeast } from "./tool-calls.js";
import { type Api, type ExtractedUsage, emptyUsage } from "./types.js";

/** What a stream cut short showed of itself: the request's size, the events received, the billed calls seen. */
export interface CutShortStream {
  api: Api | null;
  model: string | null;
  requestBytes: number;
  events: number;
  shown?: StreamShown;
  /** The request's fields (an image request's or a transcription's are what its estimate is made of). */
  request?: Record<string, unknown> | null;
  /**
   * The model's context window, where known: a transcription's worst case holds it (as a budget did).
   * Looked up only for such an estimate (the SDK's engine is built at its first use).
   */
  contextWindow?: () => number | null;
  /**
   * What the transcription's model bills, by its rates in force (transcriptionBilling): the worst case's
   * measures it does not bill are not recorded (a token-billed model's audio length, whisper-1's tokens).
   * Null or absent: unknown, all are kept.
   */
  billedBy?: () => TranscriptionBilling | null;
  /**
   * Whether the speech model bills the characters of its text (tts-1), by its rates in force
   * (billsCharacters): then its estimate is those characters, not tokens it does not bill. Absent: false.
   */
  billsCharacters?: () => boolean;
}

/**
 * Usage of a stream cut short. What the provider reported so far, raised to what the stream showed: tool
 * calls to those seen, and Anthropic's output to the events received (its message_start reports the input
 * and 1 output token; later counts come as the stream goes). Both are billed once generated. Elsewhere a
 * report is the final one: the others send usage at the end, or all of it so far in every chunk (Gemini).
 * Without a report: input estimated from the request size (~4 bytes per token),
 * output from the events received (OpenAI-style streams carry about one token per event); an image stream
 * (whose events are partial images, and whose usage comes only at its end) and a transcription (whose
 * request is mostly audio bytes, not text) at its request's worst case, as a budget held it; speech (whose
 * events are audio) as its text spoken at an ordinary pace. Such records
 * are stored with cost_source "estimated", as is an image a Responses stream showed its tool made.
 */
export function estimateCutShortUsage(partial: ExtractedUsage | null, s: CutShortStream): ExtractedUsage {
  if (partial) {
    const usage = { ...partial.usage };
    if (s.api === "anthropic.messages" && s.events > usage.output_tokens) usage.output_tokens = s.events;
    if (s.shown) atLeast(usage, s.shown.toolCalls);
    // Advisor consultations that came back before the cut were billed: their own call, estimated (the
    // reply's usage, which would say them, comes at its end).
    const advice = partial.tool_model_call
      ? null
      : estimatedAdvisorCall(s.shown?.advisorCalls ?? 0, usage, advisorToolModel(s.request));
    return { ...partial, usage, ...(advice && { tool_model_call: advice }) };
  }
  const usage =
    s.api === "openai.images" || s.api === "openai.transcriptions"
      ? worstCaseUsage(s.api, s.request ?? null, { byteLength: 0 }, s.contextWindow?.() ?? null).usage
      : s.api === "openai.speech"
        ? speechUsage(s.request ?? null, s.billsCharacters?.() ?? false).usage.usage // events are audio
        : { ...emptyUsage(), input_uncached_tokens: Math.ceil(s.requestBytes / 4), output_tokens: s.events };
  if (s.api === "openai.transcriptions") {
    const by = s.billedBy?.() ?? null;
    const known = by !== null && (by.length || by.tokens);
    if (known && !by.length) usage.input_audio_ms = 0;
    if (known && !by.tokens) {
      usage.input_uncached_tokens = 0;
      usage.input_audio_tokens = 0;
      usage.output_tokens = 0;
    }
  }
  if (s.shown) atLeast(usage, s.shown.toolCalls);
  // Images the image generation tool made before the cut were billed: their own call, estimated (at the
  // model the request's tool names, as the reply does not say).
  const images = s.shown ? estimatedImageGeneration(s.shown.images, null) : null;
  return {
    model: s.model,
    usage_raw: { estimated: true, request_bytes: s.requestBytes, events: s.events },
    usage,
    ...(images && { tool_model_call: images }),
  };
}
