import { extractFromResponse } from "./extract.js";
import { isObject, type JsonObject } from "./read.js";
import type { Api, ExtractedUsage } from "./types.js";

/**
 * Batch APIs answer each request of a batch in one line of a JSONL results file: OpenAI's batch output
 * file (`GET /v1/files/{output_file_id}/content`) and Anthropic's message batch results
 * (`GET /v1/messages/batches/{id}/results`). Each answered request is a call billed at the batch rate.
 */
export interface BatchResult {
  /** The request's id within its batch (`custom_id`: unique in a batch). */
  customId: string;
  api: Api;
  usage: ExtractedUsage;
  /** The provider's id of the request (OpenAI's request id, Anthropic's message id), when it gives one. */
  requestId: string | null;
  /** When the reply was made (epoch ms), when it says. */
  createdMs: number | null;
}

export type BatchFamily = "openai" | "anthropic";

/**
 * The billed call a results line reports, or null for a line that reports none: a request that failed,
 * expired or was cancelled (not billed), a line of another kind of file (a batch's input, say).
 */
export function batchResult(family: BatchFamily, line: unknown): BatchResult | null {
  if (!isObject(line) || typeof line.custom_id !== "string" || line.custom_id === "") return null;
  return family === "openai" ? openaiResult(line.custom_id, line) : anthropicResult(line.custom_id, line);
}

/** `{id, custom_id, response: {status_code, request_id, body}, error}`. */
function openaiResult(customId: string, line: JsonObject): BatchResult | null {
  const response = line.response;
  if (!isObject(response) || response.status_code !== 200 || !isObject(response.body)) return null;
  const body = response.body;
  const api = openaiApiOf(body);
  if (!api) return null;
  const usage = usageOf(api, body);
  if (!usage) return null;
  const created = typeof body.created === "number" ? body.created : body.created_at;
  return {
    customId,
    api,
    usage,
    requestId: typeof response.request_id === "string" ? response.request_id : null,
    createdMs: typeof created === "number" && Number.isFinite(created) ? Math.round(created * 1000) : null,
  };
}

/** Which API answered, by the body's `object` (a batch runs chat, Responses, embeddings or completions requests). */
function openaiApiOf(body: JsonObject): Api | null {
  switch (body.object) {
    case "chat.completion":
      return "openai.chat";
    case "response":
      return "openai.responses";
    case "text_completion":
      return "openai.completions";
    case "list":
      return "openai.embeddings";
    default:
      return null;
  }
}

/** `{custom_id, result: {type: "succeeded", message}}`; errored, expired and canceled requests are not billed. */
function anthropicResult(customId: string, line: JsonObject): BatchResult | null {
  const result = line.result;
  if (!isObject(result) || result.type !== "succeeded" || !isObject(result.message)) return null;
  const usage = usageOf("anthropic.messages", result.message);
  if (!usage) return null;
  const id = result.message.id;
  return {
    customId,
    api: "anthropic.messages",
    usage,
    requestId: typeof id === "string" ? id : null,
    createdMs: null,
  };
}

function usageOf(api: Api, body: JsonObject): ExtractedUsage | null {
  try {
    return extractFromResponse(api, body);
  } catch {
    return null; // no usage reported: nothing to bill
  }
}
