/**
 * A local stand-in for the OpenAI and Anthropic APIs that replays the real recorded payloads of
 * `../shared/fixtures/providers` (bodies verbatim, SSE streams event by event with realistic timing).
 * Legacy completions (/v1/completions), of which the fixtures hold no capture, are built in the documented shape.
 *
 * The reply is chosen by path + request body (`model`, `stream`, `stream_options.include_usage`), and can be
 * steered per request with headers (the gateway forwards every non-`x-tollgate-*` header):
 * - `x-mock-scenario`: `rate-limit` (429 + retry-after: 1), `rate-limit-once` (429 the first time this exact
 *   request is seen, then the normal reply), `server-error` (500), `server-error-once` (500 the first time,
 *   as rate-limit-once), `hang` (never answers), `hang-once` (never answers the first time, as rate-limit-once:
 *   a client's attempt that times out, answered on its retry),
 *   `not-found-cut` (a 404 whose body breaks off half-way), `reset-mid-stream` (half the reply, then the
 *   socket is destroyed), `stall-mid-stream` (half the reply,
 *   then silence), `fails-in-background` (a background submission whose response fails before it ran:
 *   polled or resumed, it is `failed`, without usage), `usage-unreadable-at-end` (a stream whose final
 *   `response.completed` reports usage without its output tokens, which no reader can price; so does a
 *   background one's resumed stream, while its polls find the response as it finished, usage and all),
 *   `no-usage-at-end` (as that, with usage: null), `usage-unreadable-when-polled` and `no-usage-when-polled`
 *   (as those, for a background response's polls that find it finished, `completed`: its stream is as it ran),
 *   `usage-unreadable-throughout` (its stream's final event and its polls alike, as OpenAI's would be: that
 *   event carries the response a poll gets), `no-stream-options` (a request with `stream_options` is
 *   refused, 400, as Azure OpenAI refuses it), `forbids-stream-options` (so, 422, as a pydantic server
 *   that forbids unknown fields words it: `{"detail": […]}`).
 * - `?api-version=` before `2024-09-01-preview` (Azure OpenAI's): a request with `stream_options` is refused
 *   so too, before any scenario (which its request without them then meets).
 * - `stream_options.include_obfuscation` that is no boolean: OpenAI's 400 naming it (a client's mistake).
 * - `x-mock-encoding: gzip`: a resumed background stream comes gzipped, though nobody asked for it.
 * - `x-mock-fixture`: a fixture path under `providers/` (or `conformance/payloads/…`) to answer with instead of the default.
 * - `x-mock-chunk-delay-ms`: delay between SSE events for this request.
 * - `x-mock-headers-delay-ms`: delay before the reply's headers (a model slow to start).
 * - `x-mock-retry-after`: the rate-limit scenarios' retry-after value (default 1).
 * - `x-mock-should-retry`: an `x-should-retry` header for the rate-limit scenarios to send (Anthropic does).
 * - `x-mock-image-bytes`: each image in a whole reply (`b64_json`, the image tool's `result`) is this many
 *   characters of base64, as a real image's bytes are megabytes (the fixtures' are cut short).
 * - Anthropic messages with an advisor tool (`advisor_*`), an `inference_geo` or a `speed`: a real reply whose
 *   usage has the advisor's consultations (ADVISOR_ITERATIONS) and says how it was served, as Anthropic's does.
 * - Speech (`/v1/audio/speech`) answers its audio (`speechAudio`) in 4 KB chunks, `x-mock-chunk-delay-ms`
 *   apart (`reset-mid-stream`: half of them); `stream_format: "sse"` answers its event stream fixture; a
 *   request without text (or not JSON), 400.
 * - `x-mock-case`: keeps one test's background responses (`background: true`) apart from another's in
 *   the mock. Their ids are still their fixture's: a gateway or SDK that recorded a response under that id
 *   records it once, so tests of finished responses in one process each use a fixture of their own.
 *
 * Background responses: polls (`GET /v1/responses/{id}`) answer in_progress once, then the finished reply;
 * a streamed one's stream is resumed by `GET /v1/responses/{id}?stream=true[&starting_after=N]`.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { imageToolOf, servedAsOf } from "@tollgate/core";

export interface RecordedRequest {
  method: string;
  /** Path with query string, as the upstream saw it. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, or a multipart form's text fields (null when empty or neither). */
  // biome-ignore lint/suspicious/noExplicitAny: request bodies are inspected loosely
  body: any;
  rawBody: string;
  /** The body's bytes, as they came. */
  bytes: Buffer;
}

/**
 * Images API replies (packages/core/test/fixtures/openai-images: published usage objects, the image data
 * cut short), by model; OpenAI has published no whole reply to replay.
 */
export const IMAGE_FX = {
  "gpt-image-1": "images-generation.gpt-image-1.reference.json",
  "gpt-image-1.5": "images-generation.gpt-image-1.5.forum-usage.json",
  stream: "images-generation.stream.gpt-image-1.reference.sse",
  /** A Responses reply whose image generation tool made an image, with the tool's usage, whole and streamed. */
  tool: "responses.image-tool.gpt-5-nano.tool-usage.json",
  /** The real reply, which has no tool_usage (replies before OpenAI reported it). */
  toolUnreported: "responses.image-tool.gpt-5-nano.json",
  toolStream: "responses.stream.image-tool.gpt-5-nano.tool-usage.sse",
} as const;

export function imageFixture(name: string): string {
  return readFileSync(new URL(`../../core/test/fixtures/openai-images/${name}`, import.meta.url), "utf8");
}

/** Audio transcription replies (packages/core/test/fixtures/openai-audio: real captured usage objects). */
export const AUDIO_FX = {
  "gpt-4o-mini-transcribe": "transcription.gpt-4o-mini-transcribe.json",
  "whisper-1": "transcription.whisper-1.json",
  stream: "transcription.stream.gpt-4o-mini-transcribe.sse",
  speech: "speech.stream.gpt-4o-mini-tts.sse",
} as const;

/**
 * A speech reply's audio (`/v1/audio/speech` without `stream_format: "sse"`): made-up bytes, not UTF-8, about
 * what 160 kbit/s MP3 takes for the text spoken at 15 characters a second, at least one 4 KB chunk.
 */
export function speechAudio(input: string): Buffer {
  const bytes = Math.max(4096, Math.ceil((input.length / 15) * 20_000));
  return Buffer.from(Array.from({ length: bytes }, (_, i) => (i * 131 + 0xff) & 0xff));
}

export function audioFixture(name: string): string {
  return readFileSync(new URL(`../../core/test/fixtures/openai-audio/${name}`, import.meta.url), "utf8");
}

/** The text fields of a multipart form (undici's parser: not the gateway's), or null for any other body. */
async function formFields(
  bytes: Buffer,
  contentType: string | undefined,
): Promise<Record<string, unknown> | null> {
  if (!contentType?.startsWith("multipart/form-data")) return null;
  const form = await new Response(bytes, { headers: { "content-type": contentType } }).formData();
  const fields: Record<string, unknown> = {};
  for (const [k, v] of form) if (typeof v === "string") fields[k] = k === "stream" ? v === "true" : v;
  return fields;
}

export interface MockUpstream {
  /** Origin, e.g. http://127.0.0.1:4321 (the APIs live under /v1). */
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export interface MockOptions {
  /** Delay between SSE events: a fixed number of ms, or [min, max] drawn uniformly. Default [5, 20]. */
  chunkDelayMs?: number | [number, number];
}

// ---------------------------------------------------------------------------------------------------
// fixtures

/** `../shared/fixtures` beside the repository (TOLLGATE_FIXTURES overrides). */
export const FIXTURES_DIR = ((): string => {
  if (process.env.TOLLGATE_FIXTURES) return resolve(process.env.TOLLGATE_FIXTURES);
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
  for (const dir of [join(repo, "../shared/fixtures"), join(repo, "shared/fixtures")])
    if (existsSync(join(dir, "providers"))) return dir;
  throw new Error(`cannot find the shared fixtures beside ${repo} (set TOLLGATE_FIXTURES)`);
})();

const cache = new Map<string, string>();

/**
 * The text of a fixture under `providers/`, e.g. `openai/chat-completion.gpt-4.1-nano.json`, or of a
 * conformance payload (`conformance/payloads/…`: real captures too).
 */
export function fixture(rel: string): string {
  let text = cache.get(rel);
  if (text === undefined) {
    const root = resolve(FIXTURES_DIR, rel.startsWith("conformance/payloads/") ? "." : "providers");
    const path = resolve(root, rel);
    if (!path.startsWith(root)) throw new Error(`bad fixture path ${rel}`);
    text = readFileSync(path, "utf8");
    cache.set(rel, text);
  }
  return text;
}

/** Default fixture per endpoint. */
export const FX = {
  chat: "openai/chat-completion.gpt-4.1-nano.json",
  chatReasoning: "openai/chat-completion.o3-mini.reasoning.json",
  chatCacheRead: "openai/chat-completion.gpt-5.6-sol.cache-read.json",
  chatStream: "openai/chat-completion.stream.gpt-4o-mini.include-usage.sse",
  responses: "openai/responses.gpt-4o.cached.json",
  responsesReasoning: "openai/responses.gpt-5.cached-reasoning.json",
  responsesStream: "openai/responses.stream.gpt-5.reasoning.sse",
  embeddings: "openai/embeddings.text-embedding-3-small.json",
  messages: "anthropic/messages.claude-sonnet-4-5.text.json",
  messagesCache: "anthropic/messages.claude-sonnet-4-5.cache-read-and-write.json",
  messagesStream: "anthropic/messages.stream.claude-sonnet-4.thinking.sse",
  messagesStreamTools: "anthropic/messages.stream.claude-sonnet-4-6.code-execution.sse",
  messagesStreamChunks: "anthropic/messages.stream.claude-sonnet-4-5.text.chunks.jsonl",
} as const;

/** The fixture bodies the mock's batch results answer with, in order (one request each). */
export const BATCH_FIXTURES = {
  openai: [FX.chat, FX.chatCacheRead, FX.embeddings, "openai/responses.gpt-5.6-sol.cache-read.json"],
  anthropic: [FX.messages, FX.messagesCache],
} as const;

/**
 * An OpenAI batch output file (`GET /v1/files/{output_file_id}/content`): a line per request, each
 * wrapping a real reply body in the documented envelope, and a request that failed (not billed).
 */
export function openaiBatchOutput(): string {
  const answered = BATCH_FIXTURES.openai.map((rel, i) => ({
    id: `batch_req_${i}`,
    custom_id: `request-${i}`,
    response: { status_code: 200, request_id: `req_batch_${i}`, body: JSON.parse(fixture(rel)) },
    error: null,
  }));
  const failed = {
    id: "batch_req_failed",
    custom_id: "request-failed",
    response: {
      status_code: 400,
      request_id: "req_batch_failed",
      body: { error: { message: "Invalid model", type: "invalid_request_error", code: "model_not_found" } },
    },
    error: null,
  };
  return `${[answered[0], failed, ...answered.slice(1)].map((l) => JSON.stringify(l)).join("\n")}\n`;
}

/** A batch output file of one answered request (`name` makes its ids: batch_req_<name>, …). */
function oneLineBatchOutput(name: string, body: unknown): string {
  const response = { status_code: 200, request_id: `req_batch_${name}`, body };
  return `${JSON.stringify({ id: `batch_req_${name}`, custom_id: `request-${name}`, response, error: null })}\n`;
}

/** A batch output file of one chat reply whose service tier is a name longer than any the providers use. */
export function longTierBatchOutput(): string {
  return oneLineBatchOutput("tier", {
    ...JSON.parse(fixture(BATCH_FIXTURES.openai[0])),
    service_tier: "t".repeat(100),
  });
}

/** A batch output file of one Responses request whose image generation tool made an image. */
export function imageToolBatchOutput(): string {
  return oneLineBatchOutput("img", JSON.parse(imageFixture(IMAGE_FX.tool)));
}

/**
 * An Anthropic message batch's results (`GET /v1/messages/batches/{id}/results`): succeeded requests
 * wrapping real message bodies, and an errored and an expired one (not billed). No final newline.
 */
export function anthropicBatchResults(): string {
  const lines: unknown[] = BATCH_FIXTURES.anthropic.map((rel, i) => ({
    custom_id: `msg-${i}`,
    result: { type: "succeeded", message: JSON.parse(fixture(rel)) },
  }));
  lines.splice(1, 0, {
    custom_id: "msg-errored",
    result: {
      type: "errored",
      error: {
        type: "error",
        error: { type: "invalid_request_error", message: "max_tokens: Field required" },
      },
    },
  });
  lines.push({ custom_id: "msg-expired", result: { type: "expired" } });
  return lines.map((l) => JSON.stringify(l)).join("\n");
}

/** A batch's input file: request lines, no results. */
function batchInput(): string {
  const body = { model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] };
  return `${JSON.stringify({ custom_id: "request-0", method: "POST", url: "/v1/chat/completions", body })}\n`;
}

/** Requested model (prefix) → fixture, per endpoint and stream mode; the first entry is the default. */
const BY_MODEL: Record<string, Array<[string, string]>> = {
  "chat:body": [
    ["gpt-4.1-nano", FX.chat],
    ["o3-mini", FX.chatReasoning],
    ["gpt-5.6-sol", FX.chatCacheRead],
  ],
  "chat:stream": [["gpt-4o-mini", FX.chatStream]],
  "responses:body": [
    ["gpt-4o", FX.responses],
    ["gpt-5", FX.responsesReasoning],
  ],
  "responses:stream": [["gpt-5", FX.responsesStream]],
  "embeddings:body": [["text-embedding-3-small", FX.embeddings]],
  "messages:body": [
    ["claude-sonnet-4-5", FX.messages],
    ["claude-sonnet-4-5-cache", FX.messagesCache],
  ],
  "messages:stream": [
    ["claude-sonnet-4-2", FX.messagesStream],
    ["claude-sonnet-4-6", FX.messagesStreamTools],
    ["claude-sonnet-4-5", FX.messagesStreamChunks],
  ],
};

function pickFixture(kind: string, model: unknown): string {
  const table = BY_MODEL[kind]!;
  if (typeof model === "string") {
    // longest matching prefix wins (claude-sonnet-4-5-cache over claude-sonnet-4-5)
    let best: [string, string] | undefined;
    for (const e of table) if (model.startsWith(e[0]) && (!best || e[0].length > best[0].length)) best = e;
    if (best) return best[1];
  }
  return table[0]![1];
}

/**
 * A fixture as SSE text: `.sse` verbatim, `.chunks.jsonl` (one decoded event per line) framed as Anthropic
 * (`event: <type>`) or OpenAI (`data:` only, then `[DONE]`) SSE.
 */
export function sseText(rel: string): string {
  const text = fixture(rel);
  if (rel.endsWith(".sse")) return text;
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (/(^|\/)anthropic\//.test(rel))
    return lines.map((l) => `event: ${(JSON.parse(l) as { type: string }).type}\ndata: ${l}\n\n`).join("");
  return `${lines.map((l) => `data: ${l}\n\n`).join("")}data: [DONE]\n\n`;
}

/** A completed response whose usage no reader can price (`unreadable`: no output tokens), or has none. */
type SpoiledUsage = "unreadable" | "none";
type Usage = { input_tokens: number } | null;

/** A background stream whose response itself reports usage no reader can price: its polls find it so too. */
const UNREADABLE_THROUGHOUT = "usage-unreadable-throughout";

/** How the scenario spoils a completed response's usage where it is read (`at-end`: its stream's final event). */
function spoiledUsage(scenario: string, where: "at-end" | "when-polled"): SpoiledUsage | null {
  if (scenario === `usage-unreadable-${where}` || scenario === UNREADABLE_THROUGHOUT) return "unreadable";
  return scenario === `no-usage-${where}` ? "none" : null;
}

function spoil(response: { usage: Usage }, how: SpoiledUsage): void {
  response.usage = how === "unreadable" ? { input_tokens: response.usage!.input_tokens } : null;
}

/**
 * A Responses stream's event as the scenario sends it: its final one (`response.completed`) with usage no
 * reader can price (`usage-unreadable-at-end`: no output tokens) or none (`no-usage-at-end`).
 */
function finalUsageAs(scenario: string, event: string): string {
  const how = spoiledUsage(scenario, "at-end");
  if (!how || !event.includes('"response.completed"')) return event;
  const at = event.indexOf("data: ") + 6;
  const data = JSON.parse(event.slice(at)) as { response: { usage: Usage } };
  spoil(data.response, how);
  return `${event.slice(0, at)}${JSON.stringify(data)}\n\n`;
}

/** A background response a poll finds finished, as the scenario has it (`…-when-polled`: its usage spoilt). */
function polledDone(scenario: string, text: string): string {
  const how = spoiledUsage(scenario, "when-polled");
  const done = backgroundDone(text);
  if (!how) return done;
  const response = JSON.parse(done) as { status: string; usage: Usage };
  if (response.status === "completed") spoil(response, how);
  return JSON.stringify(response);
}

/** Splits SSE text into its events, each with its terminating blank line; concatenation gives the input. */
export function sseEvents(text: string): string[] {
  const out: string[] = [];
  const re = /\r?\n\r?\n/g;
  let start = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    out.push(text.slice(start, m.index + m[0].length));
    start = m.index + m[0].length;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

/**
 * What OpenAI streams when the request did NOT set `stream_options.include_usage`: the include_usage
 * capture without its final usage-only chunk (`choices: []`) and without the `"usage":null` fields.
 */
export function withoutUsage(sse: string): string {
  return sseEvents(sse)
    .filter((ev) => !(ev.includes('"choices":[]') && ev.includes('"usage":{')))
    .map((ev) => ev.replaceAll(',"usage":null', "").replaceAll('"usage":null,', ""))
    .join("");
}

/**
 * A background stream's events after sequence number `after`, as its resumption sends them: each response
 * they carry says it runs in the background, created when it was submitted.
 */
function resumedEvents(sse: string, after: number, createdAt: number): string[] {
  const out: string[] = [];
  for (const ev of sseEvents(sse)) {
    const at = ev.indexOf("data: ");
    if (at === -1) continue;
    const data = JSON.parse(ev.slice(at + 6)) as { sequence_number: number; response?: object };
    if (data.sequence_number <= after) continue;
    if (data.response) data.response = { ...data.response, background: true, created_at: createdAt };
    out.push(`${ev.slice(0, at)}data: ${JSON.stringify(data)}\n\n`);
  }
  return out;
}

/** A Responses reply as a background response still running: no output or usage yet. */
/** `text` with every image's base64 (`b64_json`, `result`) made `chars` long. */
function withImagesOf(text: string, chars: number): string {
  const image = "iVBORw0KGgoAAAANSUhEUgAA".repeat(Math.ceil(chars / 24)).slice(0, chars);
  return text.replace(/"(b64_json|result)"\s*:\s*"[^"]*"/g, (_, key) => `"${key}":"${image}"`);
}

export function pendingResponse(text: string, status: "queued" | "in_progress"): string {
  const r = JSON.parse(text) as Record<string, unknown>;
  return JSON.stringify({ ...r, background: true, status, output: [], usage: null });
}

/** A Responses reply as the background response it finished as. */
export function backgroundDone(text: string): string {
  return JSON.stringify({ ...(JSON.parse(text) as Record<string, unknown>), background: true });
}

/** A reply of the mock's: its content type, its text, whether it streams, and the fixture it came from. */
type Reply = { contentType: string; text: string; stream: boolean; fixture: string };
const SSE_TYPE = "text/event-stream; charset=utf-8";
const sseReply = (text: string, fixture: string): Reply => ({
  contentType: SSE_TYPE,
  text,
  stream: true,
  fixture,
});
const jsonReply = (text: string, fixture: string): Reply => ({
  contentType: "application/json",
  text,
  stream: false,
  fixture,
});

/** The exact reply the mock gives for a request (status 200 path), for tests to compute expectations. */
export function normalReply(
  path: string,
  body: Record<string, unknown> | null,
  fixtureOverride?: string,
): Reply | null {
  const p = path.split("?")[0]!;
  const stream = body?.stream === true;
  if (fixtureOverride) {
    const isStream = fixtureOverride.endsWith(".sse") || fixtureOverride.endsWith(".jsonl");
    return isStream
      ? sseReply(sseText(fixtureOverride), fixtureOverride)
      : jsonReply(fixture(fixtureOverride), fixtureOverride);
  }
  const model = body?.model;
  if (p === "/v1/images/generations" || p === "/v1/images/edits") {
    if (stream) {
      // An edit's stream names its events image_edit.* (a generation's image_generation.*).
      const sse = imageFixture(IMAGE_FX.stream);
      const text = p.endsWith("/edits") ? sse.replaceAll("image_generation.", "image_edit.") : sse;
      return sseReply(text, IMAGE_FX.stream);
    }
    const rel = model === "gpt-image-1.5" ? IMAGE_FX["gpt-image-1.5"] : IMAGE_FX["gpt-image-1"];
    // A DALL·E reply reports no usage (OpenAI: "for the GPT image models only").
    const { usage: _, ...dallE } = JSON.parse(imageFixture(rel)) as Record<string, unknown>;
    return jsonReply(String(model).startsWith("dall-e") ? JSON.stringify(dallE) : imageFixture(rel), rel);
  }
  if (p === "/v1/responses" && imageToolOf(body)) {
    // A response that used its image generation tool, repeating the request's tools as OpenAI does.
    // A tool asking for partial_images: 0 (not streamed) gets the real reply, from before OpenAI reported the
    // tool's usage: the mock's way of choosing it, as a model prefix chooses other fixtures.
    const unreported = imageToolOf(body)?.partial_images === 0 && !stream;
    const rel = stream ? IMAGE_FX.toolStream : unreported ? IMAGE_FX.toolUnreported : IMAGE_FX.tool;
    const echo = JSON.stringify(body?.tools);
    let text = imageFixture(rel).replaceAll(
      '"tools":[{"type":"image_generation","background":"auto","moderation":"auto","n":1,"output_compression":100,"output_format":"webp","quality":"low","size":"1024x1024"}]',
      `"tools":${echo}`,
    );
    // A background one is a response of its own (recorded once by its id), as each submission is upstream.
    if (body?.background === true)
      text = text.replaceAll(
        "resp_0a33d15155cb126d0068c96c54970481958484dea31f07926d",
        `resp_${randomUUID()}`,
      );
    return stream ? sseReply(text, rel) : jsonReply(text, rel);
  }
  if (p === "/v1/audio/speech" && body?.stream_format === "sse")
    return sseReply(audioFixture(AUDIO_FX.speech), AUDIO_FX.speech);
  if (p === "/v1/audio/transcriptions") {
    if (stream) return sseReply(audioFixture(AUDIO_FX.stream), AUDIO_FX.stream);
    const rel = model === "whisper-1" ? AUDIO_FX["whisper-1"] : AUDIO_FX["gpt-4o-mini-transcribe"];
    const reply = JSON.parse(audioFixture(rel)) as { text: string };
    // The text formats answer the transcript alone, without usage.
    if (body?.response_format === "text")
      return {
        contentType: "text/plain; charset=utf-8",
        text: `${reply.text}\n`,
        stream: false,
        fixture: rel,
      };
    return jsonReply(audioFixture(rel), rel);
  }
  const served = servedAsOf(body);
  if (p === "/v1/messages" && (advisorOf(body) || served)) {
    // How it was served, as Anthropic's usage says it; the advisor's consultations, where it had one.
    const said = served
      ? { inference_geo: served.inferenceGeo ?? "global", speed: served.speed ?? "standard" }
      : {};
    const amend = (usage: Record<string, unknown>) => ({
      ...(advisorOf(body) ? advisedUsage(usage) : usage),
      ...said,
    });
    const built = "(reply with amended usage, built)";
    // Only Claude Opus 4.6 and later take inference_geo (and fast mode): the reply is the model asked for.
    const asked = served && typeof model === "string" ? model : null;
    const consulted = advisorOf(body);
    return stream
      ? sseReply(amendedStream(amend, consulted), built)
      : jsonReply(amendedMessage(amend, asked), built);
  }
  if (p === "/v1/responses/compact") {
    const built = "(compacted response, built)";
    return jsonReply(compactedResponse(), built);
  }
  if (p === "/v1/completions") {
    const includeUsage =
      (body?.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    const text = legacyCompletion(String(model ?? "gpt-3.5-turbo-instruct"), stream, includeUsage);
    const built = "(legacy completion, built)";
    return stream ? sseReply(text, built) : jsonReply(text, built);
  }
  const endpoint =
    p === "/v1/chat/completions"
      ? "chat"
      : p === "/v1/responses"
        ? "responses"
        : p === "/v1/embeddings"
          ? "embeddings"
          : p === "/v1/messages"
            ? "messages"
            : null;
  if (!endpoint) return null;
  if (stream && endpoint !== "embeddings") {
    const rel = pickFixture(`${endpoint}:stream`, model);
    let text = sseText(rel);
    const opts = body?.stream_options as { include_usage?: unknown } | undefined;
    if (endpoint === "chat" && opts?.include_usage !== true) text = withoutUsage(text);
    return sseReply(text, rel);
  }
  const rel = pickFixture(`${endpoint}:body`, model);
  return jsonReply(fixture(rel), rel);
}

/**
 * A compacted response (`POST /v1/responses/compact`), of which the fixtures hold no capture: built in the
 * shape of OpenAI's API reference (`object: "response.compaction"`, no model, Responses usage), with the
 * usage of a real Responses reply (FX.responsesReasoning: cached and reasoning tokens).
 */
export function compactedResponse(): string {
  const { usage } = JSON.parse(fixture(FX.responsesReasoning)) as { usage: unknown };
  return JSON.stringify({
    id: "resp_mockcompact01",
    object: "response.compaction",
    created_at: 1760000000,
    output: [
      { id: "msg_mock01", type: "message", role: "user", content: [{ type: "input_text", text: "Hi" }] },
      { id: "cmp_mock01", type: "compaction", encrypted_content: "gAAAAmock" },
    ],
    usage,
  });
}

const advisorOf = (body: Record<string, unknown> | null) =>
  Array.isArray(body?.tools) &&
  body.tools.some((t) => String((t as { type?: unknown } | null)?.type).startsWith("advisor_"));

/** The advisor's two consultations in every reply the mock builds for a request with an advisor tool. */
export const ADVISOR_ITERATIONS = [
  {
    type: "advisor_message",
    model: "claude-opus-4-6",
    input_tokens: 2500,
    output_tokens: 600,
    cache_read_input_tokens: 1000,
    cache_creation_input_tokens: 0,
  },
  {
    type: "advisor_message",
    model: "claude-opus-4-6",
    input_tokens: 4000,
    output_tokens: 900,
    cache_read_input_tokens: 1000,
    cache_creation_input_tokens: 0,
  },
];

/** `usage` with its iterations: the executor's own (as the top-level fields sum them), then the advisor's. */
function advisedUsage(usage: Record<string, unknown>): Record<string, unknown> {
  return { ...usage, iterations: [{ type: "message", ...usage }, ...ADVISOR_ITERATIONS] };
}

type Amend = (usage: Record<string, unknown>) => Record<string, unknown>;

/**
 * A Messages reply whose usage says more than the fixtures' captures do (where inference ran, an advisor's
 * consultations in the shape of the SDK's types, `BetaAdvisorMessageIterationUsage`): a real reply
 * (FX.messages) with its usage amended.
 */
function amendedMessage(amend: Amend, model: string | null): string {
  const reply = JSON.parse(fixture(FX.messages)) as { model: string; usage: Record<string, unknown> };
  return JSON.stringify({ ...reply, model: model ?? reply.model, usage: amend(reply.usage) });
}

/** The same, streamed: a real stream (FX.messagesStream) whose final message_delta carries the amended usage. */
function amendedStream(amend: Amend, consulted: boolean): string {
  const sse = (type: string, data: object) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  // The consultation as the stream shows it, before the reply's own blocks (indexes past theirs).
  const advice = [
    sse("content_block_start", {
      index: 90,
      content_block: { type: "server_tool_use", id: "srvtoolu_mock1", name: "advisor", input: {} },
    }),
    sse("content_block_stop", { index: 90 }),
    sse("content_block_start", {
      index: 91,
      content_block: {
        type: "advisor_tool_result",
        tool_use_id: "srvtoolu_mock1",
        content: { type: "advisor_result", text: "Check the edge cases first.", stop_reason: "end_turn" },
      },
    }),
    sse("content_block_stop", { index: 91 }),
  ].join("");
  return sseEvents(sseText(FX.messagesStream))
    .map((event) => {
      const data = /^data: (.*)$/m.exec(event)?.[1];
      const parsed = data ? (JSON.parse(data) as { type?: string; usage?: Record<string, unknown> }) : null;
      if (parsed?.type === "message_start" && consulted) return event + advice;
      if (parsed?.type !== "message_delta" || !parsed.usage) return event;
      return sse("message_delta", { ...parsed, usage: amend(parsed.usage) });
    })
    .join("");
}

/** The usage of every legacy completion the mock builds. */
export const LEGACY_COMPLETION_USAGE = { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 };
const LEGACY_PIECES = ["\n\n", "This", " is", " indeed", " a", " test", "."];

/**
 * A legacy completion (/v1/completions). The fixtures hold no captured one, so it is built in the shape of
 * OpenAI's API reference: one body, or an SSE stream of text chunks whose usage chunk (empty `choices`)
 * comes only when the request asked for it.
 */
export function legacyCompletion(model: string, stream: boolean, includeUsage: boolean): string {
  const head = { id: "cmpl-mock7Xq2", object: "text_completion", created: 1717000000, model };
  if (!stream)
    return JSON.stringify({
      ...head,
      choices: [{ text: LEGACY_PIECES.join(""), index: 0, logprobs: null, finish_reason: "stop" }],
      usage: LEGACY_COMPLETION_USAGE,
    });
  // With include_usage every chunk says `"usage": null` until the usage chunk, as chat streams do.
  const chunks = LEGACY_PIECES.map((text, i) => ({
    ...head,
    choices: [
      { text, index: 0, logprobs: null, finish_reason: i === LEGACY_PIECES.length - 1 ? "stop" : null },
    ],
    ...(includeUsage ? { usage: null } : {}),
  }));
  const events = includeUsage
    ? [...chunks, { ...head, choices: [], usage: LEGACY_COMPLETION_USAGE }]
    : chunks;
  return `${events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("")}data: [DONE]\n\n`;
}

// ---------------------------------------------------------------------------------------------------
// error bodies (shapes of the providers' real errors)

const isAnthropic = (path: string) => path.startsWith("/v1/messages");

function rateLimitBody(path: string): string {
  return isAnthropic(path)
    ? JSON.stringify({
        type: "error",
        error: {
          type: "rate_limit_error",
          message: "This request would exceed the rate limit for your organization.",
        },
      })
    : JSON.stringify({
        error: {
          message:
            "Rate limit reached for gpt-4o-mini in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.",
          type: "requests",
          param: null,
          code: "rate_limit_exceeded",
        },
      });
}

/**
 * An upstream that knows no stream_options: Azure OpenAI before api-version 2024-09-01-preview (dated
 * versions sort as text), or any other (`no-stream-options`).
 */
function knowsNoStreamOptions(scenario: string, path: string): boolean {
  const version = new URL(path, "http://mock").searchParams.get("api-version");
  return scenario === "no-stream-options" || (version !== null && version < "2024-09-01-preview");
}

/** Azure OpenAI's answer to a request with stream_options, before api-version 2024-09-01-preview. */
function noStreamOptionsBody(): string {
  return JSON.stringify({
    error: {
      message:
        "Unrecognized request argument supplied: stream_options. Please contact us through an Azure support request at: https://go.microsoft.com/fwlink/?linkid=2213926 for further questions.",
      type: "invalid_request_error",
      param: null,
      code: null,
    },
  });
}

/** A pydantic server's 422 for a field it forbids (extra="forbid"): no OpenAI `error` in it. */
function extraForbiddenBody(field: string): string {
  return JSON.stringify({
    detail: [
      { type: "extra_forbidden", loc: ["body", field], msg: "Extra inputs are not permitted", input: null },
    ],
  });
}

/**
 * OpenAI's 400 for a stream option of the wrong type (`stream_options.include_obfuscation`, a boolean), as
 * any upstream that knows stream_options answers a client's mistake in them; null when they are well typed.
 */
function invalidStreamOption(body: unknown): string | null {
  const opts = (body as { stream_options?: Record<string, unknown> } | null)?.stream_options;
  const value = opts?.include_obfuscation;
  if (value === undefined || typeof value === "boolean") return null;
  return JSON.stringify({
    error: {
      message: `Invalid type for 'stream_options.include_obfuscation': expected a boolean, but got a ${typeof value} instead.`,
      type: "invalid_request_error",
      param: "stream_options.include_obfuscation",
      code: "invalid_type",
    },
  });
}

function serverErrorBody(path: string): string {
  return isAnthropic(path)
    ? JSON.stringify({ type: "error", error: { type: "api_error", message: "Internal server error" } })
    : JSON.stringify({
        error: {
          message: "The server had an error while processing your request. Sorry about that!",
          type: "server_error",
          param: null,
          code: null,
        },
      });
}

function notFoundBody(path: string): string {
  return isAnthropic(path)
    ? JSON.stringify({ type: "error", error: { type: "not_found_error", message: `Not found: ${path}` } })
    : JSON.stringify({
        error: { message: `Invalid URL (${path})`, type: "invalid_request_error", param: null, code: null },
      });
}

// ---------------------------------------------------------------------------------------------------
// server

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startMockUpstream(opts: MockOptions = {}): Promise<MockUpstream> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const seenOnce = new Set<string>();
  /**
   * Background responses by id and x-mock-case: the reply they finish with, how often they were polled, and
   * the stream of those created streaming (which `GET /v1/responses/{id}?stream=true` resumes).
   */
  const background = new Map<string, { text: string; polls: number; sse?: string }>();
  let n = 0;
  const delayOf = (req: RecordedRequest): (() => number) => {
    const h = req.headers["x-mock-chunk-delay-ms"];
    const d = h !== undefined ? Number(h) : (opts.chunkDelayMs ?? [5, 20]);
    if (typeof d === "number") return () => d;
    return () => d[0] + Math.random() * (d[1] - d[0]);
  };

  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const bytes = Buffer.concat(chunks);
    const rawBody = bytes.toString("utf8");
    let body: unknown = null;
    try {
      body = rawBody ? JSON.parse(rawBody) : null;
    } catch {
      body = await formFields(bytes, req.headers["content-type"]).catch(() => null);
    }
    const rec: RecordedRequest = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers: req.headers,
      body,
      rawBody,
      bytes,
    };
    requests.push(rec);
    const id = ++n;
    const anthropic = isAnthropic(rec.path);
    const idHeaders: Record<string, string> = anthropic
      ? { "request-id": `req_mock${String(id).padStart(6, "0")}` }
      : {
          "x-request-id": `req_mock${String(id).padStart(6, "0")}`,
          "openai-processing-ms": "42",
          "openai-version": "2020-10-01",
        };
    const scenario = String(req.headers["x-mock-scenario"] ?? "");
    const send = (status: number, text: string, extra: Record<string, string> = {}) => {
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(text)),
        ...idHeaders,
        ...extra,
      });
      res.end(text);
    };

    if (scenario === "hang") return; // never answers; the socket is destroyed on close()
    if (scenario === "hang-once") {
      const key = `${rec.method} ${rec.path} ${rawBody}`;
      if (!seenOnce.has(key)) return void seenOnce.add(key);
    }
    const headersDelay = Number(req.headers["x-mock-headers-delay-ms"] ?? 0);
    if (headersDelay > 0) await sleep(headersDelay);
    const retryAfter: Record<string, string> = {
      "retry-after": String(req.headers["x-mock-retry-after"] ?? "1"),
    };
    const shouldRetry = req.headers["x-mock-should-retry"];
    if (typeof shouldRetry === "string") retryAfter["x-should-retry"] = shouldRetry;
    // An upstream that knows no stream_options refuses it before anything else (a rate limit, say).
    if (
      (body as { stream_options?: unknown } | null)?.stream_options &&
      knowsNoStreamOptions(scenario, rec.path)
    )
      return send(400, noStreamOptionsBody());
    // A compatible server that forbids fields it does not know (pydantic's extra="forbid"): 422, its detail.
    if (
      (body as { stream_options?: unknown } | null)?.stream_options &&
      scenario === "forbids-stream-options"
    )
      return send(422, extraForbiddenBody("stream_options"));
    const invalid = invalidStreamOption(body);
    if (invalid !== null) return send(400, invalid);
    if (scenario === "rate-limit") return send(429, rateLimitBody(rec.path), retryAfter);
    if (scenario === "rate-limit-once" || scenario === "server-error-once") {
      const key = `${rec.method} ${rec.path} ${rawBody}`;
      if (!seenOnce.has(key)) {
        seenOnce.add(key);
        return scenario === "rate-limit-once"
          ? send(429, rateLimitBody(rec.path), retryAfter)
          : send(500, serverErrorBody(rec.path));
      }
    }
    if (scenario === "server-error") return send(500, serverErrorBody(rec.path));
    if (scenario === "not-found-cut") {
      const text = notFoundBody(rec.path);
      res.writeHead(404, {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(text)),
        ...idHeaders,
      });
      await writeAll(res, text.slice(0, text.length >> 1));
      await sleep(20); // what was written reaches the client before the reset
      return res.socket?.destroy();
    }

    const path = rec.path.split("?")[0]!;
    if (rec.method === "GET" && path === "/v1/models")
      return send(
        200,
        JSON.stringify({
          object: "list",
          data: [
            { id: "gpt-4o-mini", object: "model", created: 1721172741, owned_by: "system" },
            { id: "text-embedding-3-small", object: "model", created: 1705948997, owned_by: "system" },
          ],
        }),
      );
    if (rec.method === "GET" && path === "/v1/chat/completions")
      return send(
        200,
        JSON.stringify({ object: "list", data: [], first_id: null, last_id: null, has_more: false }),
      );
    // Batch results, as the providers serve them (JSONL), in 97-byte pieces (lines split anywhere) at the
    // request's chunk delay.
    const batchFile =
      rec.method !== "GET"
        ? null
        : path === "/v1/files/file-batch-output-image-tool/content"
          ? imageToolBatchOutput()
          : path === "/v1/files/file-batch-output-long-tier/content"
            ? longTierBatchOutput()
            : /^\/v1\/files\/file-batch-output[^/]*\/content$/.test(path)
              ? openaiBatchOutput()
              : path === "/v1/files/file-batch-input/content"
                ? batchInput()
                : /^\/v1\/messages\/batches\/[^/]+\/results$/.test(path)
                  ? anthropicBatchResults()
                  : null;
    if (batchFile !== null) {
      const type = path.startsWith("/v1/files/") ? "application/octet-stream" : "application/x-jsonl";
      res.writeHead(200, { "content-type": type, ...idHeaders });
      const buf = Buffer.from(batchFile);
      const delay = delayOf(rec);
      for (let at = 0; at < buf.length; at += 97) {
        res.write(buf.subarray(at, at + 97));
        await sleep(delay());
      }
      return res.end();
    }
    // A message batch that ended, as Anthropic describes it: its results_url names where it is served from.
    const messageBatch = /^\/v1\/messages\/batches(?:\/([^/]+))?$/.exec(path);
    if (rec.method === "GET" && messageBatch) {
      const batch = (id: string) => ({
        id,
        type: "message_batch",
        processing_status: "ended",
        request_counts: { processing: 0, succeeded: 2, errored: 1, canceled: 0, expired: 1 },
        created_at: "2026-12-04T10:00:00Z",
        ended_at: "2026-12-04T10:20:00Z",
        expires_at: "2026-12-05T10:00:00Z",
        archived_at: null,
        cancel_initiated_at: null,
        results_url: `http://${req.headers.host}/v1/messages/batches/${id}/results`,
      });
      const id = messageBatch[1];
      return send(
        200,
        JSON.stringify(
          id
            ? batch(id)
            : {
                data: [batch("msgbatch_01"), batch("msgbatch_02")],
                has_more: false,
                first_id: null,
                last_id: null,
              },
        ),
      );
    }
    if (rec.method === "POST" && path === "/v1/messages/count_tokens")
      return send(200, JSON.stringify({ input_tokens: Math.max(1, Math.ceil(rawBody.length / 4)) }));

    // Background responses: a submission answers queued; its polls (GET /v1/responses/{id}) answer
    // in_progress once, then the whole reply, as OpenAI's do (the id names the fixture's response).
    const caseKey = String(req.headers["x-mock-case"] ?? "");
    const poll = /^\/v1\/responses\/([^/]+)$/.exec(path);
    const query = new URLSearchParams(rec.path.slice(path.length));
    if (rec.method === "GET" && poll && query.get("stream") === "true") {
      // A background stream resumed: its events after `starting_after`, as the ones it ran with.
      const state = background.get(`${poll[1]}:${caseKey}`);
      if (!state?.sse) return send(404, notFoundBody(rec.path));
      const after = Number(query.get("starting_after") ?? -1);
      const created = (JSON.parse(state.text) as { created_at: number }).created_at;
      const rest = resumedEvents(state.sse, after, created).map((ev) => finalUsageAs(scenario, ev));
      if (req.headers["x-mock-encoding"] === "gzip") {
        // An upstream that compresses the stream though the client asked for none.
        const gz = gzipSync(rest.join(""));
        res.writeHead(200, { "content-type": "text/event-stream", "content-encoding": "gzip", ...idHeaders });
        return res.end(gz);
      }
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", ...idHeaders });
      const cut = scenario === "reset-mid-stream" ? rest.length >> 1 : rest.length;
      for (const ev of rest.slice(0, cut)) await writeAll(res, ev);
      if (cut === rest.length) return res.end();
      await sleep(20); // what was written reaches the client before the reset
      return res.socket?.destroy();
    }
    if (rec.method === "GET" && poll) {
      const state = background.get(`${poll[1]}:${caseKey}`);
      if (!state) return send(404, notFoundBody(rec.path));
      state.polls++;
      return send(
        200,
        state.polls === 1 ? pendingResponse(state.text, "in_progress") : polledDone(scenario, state.text),
      );
    }
    const speech = body as { input?: unknown; stream_format?: unknown } | null;
    // As OpenAI answers a speech request without text (or a body that is not JSON): 400, nothing made.
    if (rec.method === "POST" && path === "/v1/audio/speech" && typeof speech?.input !== "string")
      return send(
        400,
        JSON.stringify({
          error: {
            message: "[{'type': 'missing', 'loc': ('body', 'input'), 'msg': 'Field required'}]",
            type: "invalid_request_error",
            param: null,
            code: null,
          },
        }),
      );
    if (rec.method === "POST" && path === "/v1/audio/speech" && speech?.stream_format !== "sse") {
      const audio = speechAudio(String(speech?.input ?? ""));
      res.writeHead(200, { "content-type": "audio/mpeg", ...idHeaders });
      const chunks = Math.ceil(audio.length / 4096);
      const upTo = scenario === "reset-mid-stream" ? chunks >> 1 : chunks;
      const delay = delayOf(rec);
      for (let i = 0; i < upTo; i++) {
        if (res.destroyed) return;
        if (i > 0) await sleep(delay());
        await writeAll(res, audio.subarray(i * 4096, (i + 1) * 4096));
      }
      if (upTo === chunks) return res.end();
      await sleep(20);
      return res.socket?.destroy();
    }
    const override = req.headers["x-mock-fixture"];
    const reply =
      rec.method === "POST"
        ? normalReply(
            rec.path,
            body as Record<string, unknown> | null,
            typeof override === "string" ? override : undefined,
          )
        : null;
    if (!reply) return send(404, notFoundBody(rec.path));
    const imageBytes = Number(req.headers["x-mock-image-bytes"] ?? 0);
    if (imageBytes > 0 && !reply.stream) reply.text = withImagesOf(reply.text, imageBytes);

    const broken = scenario === "reset-mid-stream" || scenario === "stall-mid-stream";
    const finishBroken = () => {
      if (scenario === "reset-mid-stream") res.socket?.destroy();
      // stall: leave the connection open without another byte
    };
    if (
      !reply.stream &&
      path === "/v1/responses" &&
      (body as { background?: unknown } | null)?.background === true
    ) {
      const id = (JSON.parse(reply.text) as { id: string }).id;
      // Created now, as OpenAI stamps a submission (the fixture's own created_at is months old).
      const created = { ...(JSON.parse(reply.text) as object), created_at: Math.floor(Date.now() / 1000) };
      if (scenario === "fails-in-background") {
        // It fails before it ran: finished, without usage; its resumed stream is that one event.
        const failed = {
          ...created,
          background: true,
          status: "failed",
          error: { code: "server_error", message: "The model failed to generate a response." },
          output: [],
          usage: null,
        };
        const event = { type: "response.failed", sequence_number: 2, response: failed };
        background.set(`${id}:${caseKey}`, {
          text: JSON.stringify(failed),
          polls: 0,
          sse: `event: response.failed\ndata: ${JSON.stringify(event)}\n\n`,
        });
        return send(200, pendingResponse(JSON.stringify(created), "queued"));
      }
      background.set(`${id}:${caseKey}`, { text: JSON.stringify(created), polls: 0 });
      return send(200, pendingResponse(background.get(`${id}:${caseKey}`)!.text, "queued"));
    }
    if (
      reply.stream &&
      path === "/v1/responses" &&
      (body as { background?: unknown } | null)?.background === true
    ) {
      // Streamed in the background: polls (from the first on: it runs on upstream, whatever the stream's
      // pace) find the response its response.completed names, created now.
      const completed = sseEvents(reply.text).find((ev) => ev.includes('"response.completed"'))!;
      const done = scenario === UNREADABLE_THROUGHOUT ? finalUsageAs(scenario, completed) : completed;
      const response = (JSON.parse(done.slice(done.indexOf("data: ") + 6)) as { response: { id: string } })
        .response;
      const created = { ...response, created_at: Math.floor(Date.now() / 1000) };
      background.set(`${response.id}:${caseKey}`, {
        text: JSON.stringify(created),
        polls: 1,
        sse: reply.text,
      });
    }
    if (!reply.stream) {
      if (!broken) return send(200, reply.text, { "content-type": reply.contentType });
      const buf = Buffer.from(reply.text);
      res.writeHead(200, {
        "content-type": reply.contentType,
        "content-length": String(buf.length),
        ...idHeaders,
      });
      res.write(buf.subarray(0, buf.length >> 1));
      await sleep(20);
      return finishBroken();
    }

    res.writeHead(200, {
      "content-type": reply.contentType,
      "cache-control": "no-cache",
      ...idHeaders,
    });
    res.flushHeaders();
    const events = sseEvents(reply.text).map((ev) => finalUsageAs(scenario, ev));
    const upTo = broken ? events.length >> 1 : events.length;
    const delay = delayOf(rec);
    for (let i = 0; i < upTo; i++) {
      if (res.destroyed) return;
      const d = delay();
      if (d > 0) await sleep(d);
      await writeAll(res, events[i]!);
    }
    if (broken) {
      await sleep(20);
      return finishBroken();
    }
    res.end();
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.listen(0, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function writeAll(res: ServerResponse, text: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (res.write(text)) resolve();
    else res.once("drain", resolve).once("close", resolve);
  });
}
