import { fieldText } from "../record/field-text.js";
import { normalizeUsage } from "./normalize.js";
import type { ExtractedUsage } from "./types.js";

/** What an OpenAI Realtime session's settings name (session.created / session.updated / session.update). */
export interface RealtimeSettings {
  /** The conversation's model (a transcription session has none). */
  model: string | null;
  /**
   * The model transcribing its input audio (GA: audio.input.transcription; beta: input_audio_transcription):
   * null when turned off, undefined when the settings do not say.
   */
  transcriber: string | null | undefined;
}

export function realtimeSettings(session: unknown): RealtimeSettings {
  if (!session || typeof session !== "object") return { model: null, transcriber: undefined };
  const s = session as {
    model?: unknown;
    audio?: { input?: { transcription?: { model?: unknown } | null } };
    input_audio_transcription?: { model?: unknown } | null;
  };
  const ga = s.audio?.input && "transcription" in s.audio.input ? s.audio.input.transcription : undefined;
  const setting = ga !== undefined ? ga : s.input_audio_transcription;
  return {
    model: fieldText(s.model),
    transcriber: setting === undefined ? undefined : fieldText(setting?.model),
  };
}

/** How a Realtime response ended (`response.done`): ok when completed, else its reason as the error type. */
export function realtimeResponseError(response: Record<string, unknown>): string | null {
  const status = fieldText(response.status);
  if (status === "completed") return null;
  const details = response.status_details as { reason?: unknown; error?: { type?: unknown } } | null;
  return fieldText(details?.error?.type) ?? fieldText(details?.reason) ?? status ?? "unknown";
}

/**
 * The usage of an input-audio transcription (`...input_audio_transcription.completed`): its tokens, or
 * null when it reports none that a token price covers (whisper-1 reports seconds) or an unknown shape.
 */
export function realtimeTranscriptionUsage(event: Record<string, unknown>): ExtractedUsage | null {
  const usage = event.usage as { type?: unknown } | undefined;
  if (usage?.type !== "tokens") return null;
  try {
    return { model: null, usage: normalizeUsage("openai.realtime", usage), usage_raw: usage };
  } catch {
    return null;
  }
}
