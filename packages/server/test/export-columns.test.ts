// Exports are read by position as well as by name: a column, once published, keeps its place.
import { expect, it } from "vitest";
import { EXPORT_COLUMNS } from "../src/query/export.js";

/** The layout exports had before the tool-call columns (schema version 1 plus key_id). */
const FIRST_LAYOUT =
  `event_id workspace_id trace_id span_id parent_span_id ts_start ts_end latency_ms ttft_ms kind
  provider api model_requested model stream service_tier batch status http_status error_type attempt request_id
  input_uncached_tokens cache_read_tokens cache_write_5m_tokens cache_write_1h_tokens output_tokens reasoning_tokens
  input_audio_tokens output_audio_tokens image_tokens cost_nanousd cost_input_uncached_nanousd cost_cache_read_nanousd
  cost_cache_write_5m_nanousd cost_cache_write_1h_nanousd cost_output_nanousd cost_input_audio_nanousd
  cost_output_audio_nanousd cost_image_nanousd cost_requests_nanousd cost_source price_ref priced user_id customer_id
  feature deployment prompt_version agent_run_id agent_type session_id route variant tags metadata data_mode key_id
  usage_raw schema_version`.split(/\s+/);

it("export columns are only ever appended: the first layout, the tool-call counts and their cost, then the rest (the cached media, the image output, the audio length, the call made within, the characters)", () => {
  expect(EXPORT_COLUMNS.slice(0, FIRST_LAYOUT.length)).toEqual(FIRST_LAYOUT);
  expect(EXPORT_COLUMNS.slice(FIRST_LAYOUT.length)).toEqual([
    "web_search_requests",
    "file_search_requests",
    "cost_tool_calls_nanousd",
    "web_search_preview_requests",
    "cache_audio_read_tokens",
    "cache_image_read_tokens",
    "output_image_tokens",
    "input_audio_ms",
    "parent_event_id",
    "input_characters",
  ]);
});
