import { type ExtractedUsage, emptyUsage } from "./types.js";

/**
 * Usage of a stream cut short before the provider reported any: input estimated from the request size
 * (~4 bytes per token) and output from the events received (OpenAI-style streams carry about one
 * token per event). Such records are stored with cost_source "estimated".
 */
export function estimateCutShortUsage(
  model: string | null,
  requestBytes: number,
  events: number,
): ExtractedUsage {
  return {
    model,
    usage_raw: { estimated: true, request_bytes: requestBytes, events },
    usage: { ...emptyUsage(), input_uncached_tokens: Math.ceil(requestBytes / 4), output_tokens: events },
  };
}
