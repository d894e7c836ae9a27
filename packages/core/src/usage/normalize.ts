import { normalizeAnthropicMessages } from "./anthropic.js";
import { normalizeBedrockConverse } from "./bedrock.js";
import { UsageError } from "./errors.js";
import { normalizeGoogleGenerateContent } from "./google.js";
import {
  normalizeOpenAIChat,
  normalizeOpenAIEmbeddings,
  normalizeOpenAIImages,
  normalizeOpenAIRealtime,
  normalizeOpenAIResponses,
  normalizeOpenAISpeech,
  normalizeOpenAITranscription,
} from "./openai.js";
import type { Api, NormalizedUsage } from "./types.js";

const NORMALIZERS: Record<Api, (usageRaw: unknown) => NormalizedUsage> = {
  "openai.chat": normalizeOpenAIChat,
  // Legacy Completions reports the same prompt/completion usage object as chat.
  "openai.completions": normalizeOpenAIChat,
  "openai.responses": normalizeOpenAIResponses,
  "openai.embeddings": normalizeOpenAIEmbeddings,
  "openai.realtime": normalizeOpenAIRealtime,
  "openai.images": normalizeOpenAIImages,
  "openai.transcriptions": normalizeOpenAITranscription,
  "openai.speech": normalizeOpenAISpeech,
  "anthropic.messages": normalizeAnthropicMessages,
  "google.generate_content": normalizeGoogleGenerateContent,
  "bedrock.converse": normalizeBedrockConverse,
};

/**
 * Converts a provider's raw usage object (not the whole response body) into disjoint token
 * categories. Throws UsageError on anything that is not a well-formed usage report.
 */
export function normalizeUsage(api: Api, usageRaw: unknown): NormalizedUsage {
  const normalize = NORMALIZERS[api];
  // `api` often comes from stored records or config, so guard against values outside the union.
  if (!normalize) throw new UsageError("api", `unknown api ${JSON.stringify(api)}`);
  return normalize(usageRaw);
}
