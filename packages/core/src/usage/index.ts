// Public API of usage normalization (DESIGN.md "The call record").

export { advisorToolModel, advisorToolOf, anthropicAdvisorCall } from "./advisor.js";
export { normalizeAnthropicMessages } from "./anthropic.js";
export {
  type BackgroundResponse,
  backgroundResponse,
  FinalResponseReader,
  finalResponseOf,
  isFinished,
  isPending,
} from "./background.js";
export {
  BackgroundFollower,
  FOLLOW_GIVE_UP_MS,
  FOLLOW_MAX_MS,
  type FollowOutcome,
  type FollowTimes,
  pollOutcomeOf,
} from "./background-follow.js";
export { type BatchFamily, type BatchResult, BatchResultsReader, batchResult } from "./batch.js";
export { normalizeBedrockConverse } from "./bedrock.js";
export { estimateCutShortUsage } from "./cut-short.js";
export { UsageError } from "./errors.js";
export { extractFromResponse } from "./extract.js";
export { normalizeGoogleGenerateContent } from "./google.js";
export { estimatedImageGeneration, imageOutputTokens } from "./image-tool-estimate.js";
export {
  DEFAULT_GPT_IMAGE_MODEL,
  DEFAULT_IMAGE_TOOL_MODEL,
  defaultImageModel,
  imageToolModel,
  imageToolOf,
} from "./images.js";
export { normalizeUsage } from "./normalize.js";
export {
  normalizeOpenAIChat,
  normalizeOpenAIEmbeddings,
  normalizeOpenAIImages,
  normalizeOpenAIRealtime,
  normalizeOpenAIResponses,
  normalizeOpenAISpeech,
  normalizeOpenAITranscription,
} from "./openai.js";
export {
  applyRealtimeSettings,
  type RealtimeModels,
  realtimeResponseError,
  realtimeTranscriptionUsage,
} from "./realtime.js";
export {
  EMBEDDING_INPUTS,
  type JsonSource,
  payloadSpans,
  REPLY_PAYLOADS,
  REQUEST_MEDIA,
  SKIM_OVER,
  type SkimRule,
  skimJson,
  skimmedLength,
} from "./skim.js";
export { speechCharacters, speechUsage, speechWorstCase } from "./speech.js";
export type { SseEvent } from "./sse.js";
export { parseSse, SseParser } from "./sse.js";
export type { SseUsageExtractor, StreamExtractor, StreamShown } from "./stream.js";
export {
  createSseUsageExtractor,
  createStreamExtractor,
  extractFromEvents,
  extractFromSse,
} from "./stream.js";
export {
  mayRefuseStreamOptions,
  refusesStreamOptions,
  StreamOptionsRefusals,
  streamOptionsUpstream,
} from "./stream-options.js";
export type { ToolCalls } from "./tool-calls.js";
export type { Api, ExtractedUsage, NormalizedUsage, ToolModelCall } from "./types.js";
export {
  APIS,
  CACHED_MEDIA_FIELDS,
  emptyUsage,
  FIRST_LAYOUT_TOKEN_FIELDS,
  FIRST_LAYOUT_TOOL_CALL_FIELDS,
  MEASURE_FIELDS,
  TOKEN_FIELDS,
  TOOL_CALL_FIELDS,
  USAGE_FIELDS,
} from "./types.js";
