/**
 * Normalized, disjoint token usage of one LLM call (DESIGN.md "The call record").
 * Input categories never overlap, so the total billed input is their sum:
 * input_uncached + cache_read + cache_write_5m + cache_write_1h + input_audio + image + cache_audio_read
 * + cache_image_read.
 * reasoning_tokens is informational: a subset of output_tokens (billed as output).
 * output_audio_tokens and output_image_tokens are subsets of output_tokens too (each priced at its own
 * rate where one exists). input_audio_ms and input_characters are not token counts: the length of the
 * audio a model billed by the hour heard (whisper-1), the characters of text a model billed by the
 * character read (tts-1), beside its tokens.
 */
export interface NormalizedUsage {
  /** Uncached text (and other non-audio, non-image) input tokens. */
  input_uncached_tokens: number;
  cache_read_tokens: number;
  cache_write_5m_tokens: number;
  cache_write_1h_tokens: number;
  /** All output tokens, reasoning and audio included. */
  output_tokens: number;
  reasoning_tokens: number;
  /** Uncached audio input tokens (disjoint from input_uncached_tokens). */
  input_audio_tokens: number;
  /** Audio output tokens (a subset of output_tokens). */
  output_audio_tokens: number;
  /** Uncached image input tokens (disjoint from input_uncached_tokens). */
  image_tokens: number;
  /**
   * Cached audio and image input tokens, apart from cache_read_tokens (cached text): some providers
   * price them otherwise (OpenAI's Realtime models, Gemini's cached audio).
   */
  cache_audio_read_tokens: number;
  cache_image_read_tokens: number;
  /**
   * Image output tokens (a subset of output_tokens): the images an image model makes (OpenAI's Images API),
   * priced at the model's image output rate where it has one apart from text output.
   */
  output_image_tokens: number;
  /**
   * Milliseconds of input audio, for models billed by its length rather than by tokens (whisper-1's
   * `usage: {type: "duration", seconds}`), priced at the model's input_audio_hours. 0 where a model bills tokens.
   */
  input_audio_ms: number;
  /**
   * Characters of input text, for models billed by the character rather than by tokens (OpenAI's tts-1 and
   * tts-1-hd speech), priced at the model's input_mchars. 0 where a model bills tokens.
   */
  input_characters: number;
  /**
   * Server-side tool calls the provider bills per call, beside the tokens: web searches (Anthropic's
   * `server_tool_use.web_search_requests`, OpenAI Responses `web_search_call` searches) and file searches
   * (OpenAI `file_search_call`). Counts, not tokens.
   */
  web_search_requests: number;
  file_search_requests: number;
  /**
   * The web searches (a subset of web_search_requests) run by OpenAI's older `web_search_preview` tool,
   * which OpenAI prices apart: dearer per call on its non-reasoning models.
   */
  web_search_preview_requests: number;
}

/** The token counts stores first laid their columns out for, in that order. */
export const FIRST_LAYOUT_TOKEN_FIELDS = [
  "input_uncached_tokens",
  "cache_read_tokens",
  "cache_write_5m_tokens",
  "cache_write_1h_tokens",
  "output_tokens",
  "reasoning_tokens",
  "input_audio_tokens",
  "output_audio_tokens",
  "image_tokens",
] as const satisfies readonly (keyof NormalizedUsage)[];

/** Cached audio and image input (priced apart from cached text): stores lay them out last (added later). */
export const CACHED_MEDIA_FIELDS = [
  "cache_audio_read_tokens",
  "cache_image_read_tokens",
] as const satisfies readonly (keyof NormalizedUsage)[];

/** The token counts of NormalizedUsage, in the order stores laid them out. */
export const TOKEN_FIELDS = [
  ...FIRST_LAYOUT_TOKEN_FIELDS,
  ...CACHED_MEDIA_FIELDS,
  "output_image_tokens",
] as const;

/** The tool-call counts stores first laid out (after the token columns, before the tool-call cost). */
export const FIRST_LAYOUT_TOOL_CALL_FIELDS = [
  "web_search_requests",
  "file_search_requests",
] as const satisfies readonly (keyof NormalizedUsage)[];

/** The billed server-side tool calls of NormalizedUsage: stores lay the preview subset out last (added later). */
export const TOOL_CALL_FIELDS = [
  ...FIRST_LAYOUT_TOOL_CALL_FIELDS,
  "web_search_preview_requests",
] as const satisfies readonly (keyof NormalizedUsage)[];

/**
 * What a model bills that is neither tokens nor tool calls: the length of its audio, the characters of its
 * text (stores lay them out after the image output, added later, in this order).
 */
export const MEASURE_FIELDS = [
  "input_audio_ms",
  "input_characters",
] as const satisfies readonly (keyof NormalizedUsage)[];

/** Every field of NormalizedUsage. */
export const USAGE_FIELDS = [...TOKEN_FIELDS, ...TOOL_CALL_FIELDS, ...MEASURE_FIELDS] as const;

export function emptyUsage(): NormalizedUsage {
  return {
    input_uncached_tokens: 0,
    cache_read_tokens: 0,
    cache_write_5m_tokens: 0,
    cache_write_1h_tokens: 0,
    output_tokens: 0,
    reasoning_tokens: 0,
    input_audio_tokens: 0,
    output_audio_tokens: 0,
    image_tokens: 0,
    cache_audio_read_tokens: 0,
    cache_image_read_tokens: 0,
    output_image_tokens: 0,
    input_audio_ms: 0,
    input_characters: 0,
    web_search_requests: 0,
    file_search_requests: 0,
    web_search_preview_requests: 0,
  };
}

/** The `api` values of DESIGN.md: which wire format a call used. */
export const APIS = [
  "openai.chat",
  "openai.responses",
  "openai.embeddings",
  "openai.completions",
  "openai.realtime",
  "openai.images",
  "openai.transcriptions",
  "openai.speech",
  "anthropic.messages",
  "google.generate_content",
  "bedrock.converse",
] as const;
export type Api = (typeof APIS)[number];

/** What a normalizer gets out of one provider response (body or finished stream). */
export interface ExtractedUsage {
  /** The model as the provider reported it (null where the body has none, e.g. Bedrock Converse). */
  model: string | null;
  usage: NormalizedUsage;
  /** The provider's usage object, verbatim. */
  usage_raw: unknown;
  /** The service tier the provider says it served the call on (`default`, `flex`, `standard`, …), when it says. */
  service_tier?: string | null;
  /** The provider's id of the response, where a later request can name it (OpenAI Responses' `resp_…`). */
  response_id?: string | null;
  /**
   * What a hosted tool used on a model of its own, billed at that model's rates, not the response's: a
   * call of its own. The Responses API's image generation tool (`tool_usage.image_gen`; `model` as the
   * response's `tools` name it, null where they do not), Anthropic's advisor tool (its `advisor_message`
   * iterations). Absent where the tool made nothing.
   */
  tool_model_call?: ToolModelCall | null;
}

/** A call a hosted tool made on a model of its own, inside another call. */
export interface ToolModelCall {
  /** The API its usage is in the shape of, and the record's: `openai.images`, `anthropic.messages`. */
  api: "openai.images" | "anthropic.messages";
  model: string | null;
  /** Null when the tool's usage does not read as its shape: the call's cost is unknown. */
  usage: NormalizedUsage | null;
  usage_raw: unknown;
  /** The reply reported no usage for it: estimated from what it shows (recorded cost_source=estimated). */
  estimated?: boolean;
}
