import { anthropicAdvisorCall } from "./advisor.js";
import { UsageError } from "./errors.js";
import { reportedText, snapshotReader } from "./extract.js";
import { streamedImages } from "./image-tool-estimate.js";
import { normalizeUsage } from "./normalize.js";
import type { JsonObject } from "./read.js";
import { isObject } from "./read.js";
import { skimJson } from "./skim.js";
import { SseParser } from "./sse.js";
import { streamedToolCalls, type ToolCalls } from "./tool-calls.js";
import type { Api, ExtractedUsage } from "./types.js";

/**
 * Consumes the decoded JSON events of one streamed response, one at a time, keeping O(1) state
 * (the latest usage object and model, never the events), and normalizes at the end.
 */
export interface StreamExtractor {
  push(event: unknown): void;
  /** Usage of the stream so far; null when no event carried usage. Throws UsageError on a malformed usage object. */
  result(): ExtractedUsage | null;
  /**
   * What the stream has shown so far of the calls billed with it, for a stream cut short whose provider has
   * not reported them all (result() keeps the provider's own counts).
   */
  shown(): StreamShown;
  /** The id of the response streamed, where the API names one (a Responses stream, from its first event); else null. */
  responseId(): string | null;
}

/** What a stream showed of its billed calls: hosted tool calls, and what its tools did on models of their own. */
export interface StreamShown {
  toolCalls: ToolCalls;
  /** Responses `image_generation_call` items (status, quality, size, revised prompt; not the image). */
  images: readonly JsonObject[];
  /** Anthropic advisor consultations that came back (`advisor_tool_result` blocks). */
  advisorCalls: number;
}

export function createStreamExtractor(api: Api): StreamExtractor {
  const usageOnly = usageExtractor(api);
  const toolCalls = streamedToolCalls();
  const images = streamedImages();
  let advisorCalls = 0;
  return {
    push(event) {
      usageOnly.push(event);
      if (!isObject(event)) return;
      toolCalls.push(event);
      images.push(event);
      if (
        event.type === "content_block_start" &&
        isObject(event.content_block) &&
        event.content_block.type === "advisor_tool_result"
      )
        advisorCalls++;
    },
    // The provider's own counts, where it reported them: a search block whose search failed (Anthropic's
    // max_uses_exceeded, say) is not billed. What the stream showed is for a stream cut short.
    result: () => usageOnly.result(),
    shown: () => ({ toolCalls: toolCalls.seen(), images: images.seen(), advisorCalls }),
    responseId: () => usageOnly.responseId(),
  };
}

type UsageOnly = Omit<StreamExtractor, "shown">;

function usageExtractor(api: Api): UsageOnly {
  switch (api) {
    case "openai.chat":
    case "openai.completions":
    case "openai.embeddings":
      // With stream_options.include_usage the final chunk (choices: []) carries usage, every
      // other chunk has usage: null. Groq may put it under x_groq.usage instead (or as well).
      return snapshotReader(api);
    case "openai.responses":
      // response.completed (or .incomplete / .failed) carries the whole response, usage and the output
      // items that list the hosted tool calls billed per call; earlier response.created / .in_progress
      // events have usage: null.
      return snapshotReader(api, (ev) => ev.response);
    case "openai.images":
    case "openai.transcriptions":
    case "openai.speech":
      // The completed event (`image_generation.completed`, `image_edit.completed`, `transcript.text.done`,
      // `speech.audio.done`) carries the usage; the partial images, text and audio deltas before it have none.
      return snapshotReader(api);
    case "google.generate_content":
      // Every chunk repeats a cumulative usageMetadata: the last one is the total, never sum them.
      return snapshotReader(api);
    case "bedrock.converse":
      // ConverseStream reports usage once, in the final metadata event ({metadata: {usage}} as the
      // AWS SDK decodes it, or the bare metadata payload {usage, metrics}). No model in the stream.
      return snapshotReader(api, (ev) => (isObject(ev.metadata) ? ev.metadata : ev));
    case "anthropic.messages":
      return anthropicStream();
    default:
      throw new UsageError("api", `unknown api ${JSON.stringify(api)}`);
  }
}

/**
 * Anthropic: message_start.message.usage has the input side (and output so far), then each
 * message_delta.usage is cumulative. Take the latest value of each field, never add: server tools
 * can make the final totals differ from message_start. Fields a delta omits (or sends as null)
 * keep their message_start value, so the cache-write TTL breakdown of message_start survives.
 * usage_raw is that merged object, so normalizing usage_raw again gives the same usage.
 */
function anthropicStream(): UsageOnly {
  let usage: JsonObject | undefined;
  let model: string | null = null;
  return {
    push(event) {
      if (!isObject(event)) return;
      if (event.type === "message_start" && isObject(event.message)) {
        model = reportedText(event.message.model) ?? model;
        if (isObject(event.message.usage)) usage = overlay(usage, event.message.usage);
      } else if (event.type === "message_delta" && isObject(event.usage)) {
        usage = overlay(usage, event.usage);
      }
    },
    result() {
      if (usage === undefined) return null;
      const advisor = anthropicAdvisorCall(usage);
      return {
        model,
        usage: normalizeUsage("anthropic.messages", usage),
        usage_raw: usage,
        service_tier: reportedText(usage.service_tier),
        ...(advisor && { tool_model_call: advisor }),
      };
    },
    responseId: () => null,
  };
}

function overlay(base: JsonObject | undefined, top: JsonObject): JsonObject {
  const merged: JsonObject = { ...base };
  for (const key of Object.keys(top)) {
    const value = top[key];
    if (value !== undefined && value !== null) merged[key] = value;
  }
  return merged;
}

/** Runs a whole sequence of decoded events through a stream extractor. */
export function extractFromEvents(api: Api, events: Iterable<unknown>): ExtractedUsage | null {
  const extractor = createStreamExtractor(api);
  for (const event of events) extractor.push(event);
  return extractor.result();
}

export interface SseUsageExtractor {
  /** Feeds decoded SSE text; chunks may split anywhere. */
  push(chunk: string): void;
  /** Ends the stream (flushes the parser) and returns its usage, or null when none was reported. */
  result(): ExtractedUsage | null;
  /**
   * The provider's error type when the stream carried an error event (Anthropic's `event: error`, an
   * OpenAI chunk with an `error` object, a Responses `error` or `response.failed`), else null. Its SDK
   * raises on such an event: the call failed, however cleanly its bytes ended. Read after `result()`.
   */
  error(): string | null;
  /**
   * Whether the stream's own end marker came (`[DONE]`, Anthropic's `message_stop`, a Responses
   * `response.completed`/`.incomplete`/`.failed`, an image's `image_generation.completed` or
   * `image_edit.completed`, a transcription's `transcript.text.done`, speech's `speech.audio.done`): without
   * it, and without usage, a stream that ended cleanly on the wire was cut off (undici ends a reply on a
   * closing connection quietly). Read after `result()`.
   */
  ended(): boolean;
  /** As StreamExtractor.shown. */
  shown(): StreamShown;
  /** As StreamExtractor.responseId. Read after `result()`. */
  responseId(): string | null;
}

/** Data of the events that show a billed call (StreamExtractor.shown), where an API has them. */
const SHOWN_MARKERS: Partial<Record<Api, string[]>> = {
  // Not `"response.image_generation_call.partial_image"`: its partial images show no image made yet.
  "openai.responses": ['"web_search_call"', '"file_search_call"', '"image_generation_call"'],
  "anthropic.messages": ['"server_tool_use"', '"advisor_tool_result"'],
};

/** Data of the events that end a stream, per wire format; a substring test, before any JSON decoding. */
const END_MARKERS = [
  '"message_stop"',
  '"response.completed"',
  '"response.incomplete"',
  '"response.failed"',
  '"image_generation.completed"',
  '"image_edit.completed"',
  '"transcript.text.done"',
  '"speech.audio.done"',
];

/**
 * SSE bytes (as decoded text chunks) to usage: the parser, JSON decoding and the stream extractor
 * in one incremental object for the proxy. Only the first event (model), events that may show a billed
 * tool call and events whose data mentions `"usage` are JSON-decoded; every usage-bearing event of every
 * API contains that text (`usage`, `usageMetadata`), so the skipped ones cannot change the result.
 */
export function createSseUsageExtractor(api: Api): SseUsageExtractor {
  const parser = new SseParser();
  const extractor = createStreamExtractor(api);
  let first = true;
  let error: string | null = null;
  let ended = false;
  const shows = SHOWN_MARKERS[api];
  const consume = (data: string) => {
    ended ||= data === "[DONE]" || END_MARKERS.some((m) => data.includes(m));
    // Inside a JSON string a quote is escaped: an unescaped "error" is a key or a value such as a type.
    const mayFail = data.includes('"error"') || data.includes('"response.failed"');
    if (!first && !mayFail && !data.includes('"usage') && !shows?.some((m) => data.includes(m))) return;
    let event: unknown;
    try {
      event = JSON.parse(skimJson(data));
    } catch {
      return; // "[DONE]" sentinel or a non-JSON keep-alive: no usage there
    }
    first = false;
    if (mayFail) error ??= streamErrorType(event);
    extractor.push(event);
  };
  return {
    push(chunk) {
      for (const event of parser.push(chunk)) consume(event.data);
    },
    result() {
      for (const event of parser.flush()) consume(event.data);
      return extractor.result();
    },
    error: () => error,
    ended: () => ended,
    shown: () => extractor.shown(),
    responseId: () => extractor.responseId(),
  };
}

/** The error type a stream event reports, or null for an ordinary event. */
function streamErrorType(event: unknown): string | null {
  if (typeof event !== "object" || event === null) return null;
  const e = event as { type?: unknown; code?: unknown; error?: unknown; response?: { error?: unknown } };
  // Anthropic nests the error ({type, error: {type}}); the Responses API's error event has a `code`.
  if (e.type === "error") return errorName(e.error ?? { code: e.code }, "error");
  if (e.type === "response.failed") return errorName(e.response?.error, "response_failed");
  if (typeof e.error === "object" && e.error !== null) return errorName(e.error, "error"); // OpenAI chat chunk
  return null;
}

/** An error object's `type`, else its `code`, else `fallback` (at most 64 characters). */
function errorName(err: unknown, fallback: string): string {
  const o = (err ?? {}) as { type?: unknown; code?: unknown };
  const name = [o.type, o.code].find((v): v is string => typeof v === "string" && v !== "");
  return (name ?? fallback).slice(0, 64);
}

/** A complete SSE response text to usage (tests, CLI, stored captures). */
export function extractFromSse(api: Api, text: string): ExtractedUsage | null {
  const extractor = createSseUsageExtractor(api);
  extractor.push(text);
  return extractor.result();
}
