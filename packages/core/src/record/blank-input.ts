import type { NormalizedUsage } from "../usage/types.js";
import type { AttributionField } from "./call-record.js";

/**
 * A call-record input with every attribution and usage field present and unset, for callers that fill in
 * ~50 fields. V8 turns an object that is given many new keys by computed name (`input[field] = v`) into a
 * hash table: ~4 KB per call to collect, and slower for buildCallRecord to read. Setting fields that are
 * already there changes values only; the rest are named in the caller's code and stay fast.
 */
export function blankCallInput(): Record<string, unknown> {
  return {
    user_id: undefined,
    customer_id: undefined,
    feature: undefined,
    deployment: undefined,
    prompt_version: undefined,
    agent_run_id: undefined,
    agent_type: undefined,
    session_id: undefined,
    route: undefined,
    variant: undefined,
    input_uncached_tokens: undefined,
    cache_read_tokens: undefined,
    cache_write_5m_tokens: undefined,
    cache_write_1h_tokens: undefined,
    output_tokens: undefined,
    reasoning_tokens: undefined,
    input_audio_tokens: undefined,
    output_audio_tokens: undefined,
    image_tokens: undefined,
    cache_audio_read_tokens: undefined,
    cache_image_read_tokens: undefined,
    output_image_tokens: undefined,
    input_audio_ms: undefined,
    input_characters: undefined,
    web_search_requests: undefined,
    file_search_requests: undefined,
    web_search_preview_requests: undefined,
  } satisfies Record<AttributionField | keyof NormalizedUsage, undefined>;
}
