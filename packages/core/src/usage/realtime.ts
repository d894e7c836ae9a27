import { fieldText } from "../record/field-text.js";
import { normalizeUsage } from "./normalize.js";
import type { ExtractedUsage } from "./types.js";

/** The models an OpenAI Realtime session's settings have named so far. */
export interface RealtimeModels {
  /** The conversation's model (a transcription session has none). */
  model: string | null;
  /** The model transcribing its input audio; null when it is not transcribed. */
  transcriber: string | null;
}

/**
 * Takes in what a session's settings name: the model, and the transcription model (GA:
 * audio.input.transcription; beta: input_audio_transcription). The server's (session.created /
 * session.updated) are what the session has: a transcription turned off there is off. The client's
 * (session.update) are what it asks for, kept until the server says.
 */
export function applyRealtimeSettings(models: RealtimeModels, session: unknown, fromServer: boolean): void {
  if (!session || typeof session !== "object") return;
  const s = session as {
    model?: unknown;
    audio?: { input?: { transcription?: { model?: unknown } | null } };
    input_audio_transcription?: { model?: unknown } | null;
  };
  models.model = fieldText(s.model) ?? models.model;
  const ga = s.audio?.input && "transcription" in s.audio.input ? s.audio.input.transcription : undefined;
  const setting = ga !== undefined ? ga : s.input_audio_transcription;
  if (setting === undefined) return;
  const transcriber = fieldText(setting?.model);
  if (transcriber || fromServer) models.transcriber = transcriber;
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
 * its audio's length (whisper-1); null when it reports none (events before mid-2025) or an unknown shape.
 */
export function realtimeTranscriptionUsage(event: Record<string, unknown>): ExtractedUsage | null {
  const usage = event.usage;
  if (usage === undefined || usage === null) return null;
  try {
    return { model: null, usage: normalizeUsage("openai.transcriptions", usage), usage_raw: usage };
  } catch {
    return null;
  }
}
