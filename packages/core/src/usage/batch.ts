import { extractFromResponse } from "./extract.js";
import { isObject, type JsonObject } from "./read.js";
import { skimJson } from "./skim.js";
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
  /** The record kind of the call: an embedding, else an llm call. */
  kind: "llm" | "embedding";
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
    kind: api === "openai.embeddings" ? "embedding" : "llm",
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
    kind: "llm",
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

/** Results are handed on in groups of this many (one store transaction each, in the gateway). */
const GROUP = 500;
/** A longer line is no batch result worth holding in memory whole: skipped. */
const MAX_LINE_CHARS = 16 * 1024 * 1024;
/** Every results line names its request near its start (`{"id": …, "custom_id": …` or `{"custom_id": …`). */
const NAMED_WITHIN_CHARS = 1024;

/**
 * Reads a results file (JSONL) line by line as it comes (chunks split anywhere), and hands the billed
 * results on in groups. A download whose first line is no batch result line (another kind of file) is
 * not read further.
 */
export class BatchResultsReader {
  readonly #decoder = new TextDecoder("utf-8");
  /** The line under way, in pieces (joined once it ends: a long line is not copied per chunk). */
  #pieces: string[] = [];
  #pieceChars = 0;
  /** The line under way is too long to be a result worth holding: dropped when it ends. */
  #skipping = false;
  /** Nothing but whitespace came yet: the first character tells a JSON line from any other file. */
  #opening = true;
  #first = true;
  /** The first line, still under way, named a request near its start. */
  #firstNamed = false;
  #off = false;
  #group: BatchResult[] = [];

  /** `groupSize`: how many results `onResults` gets at a time (the last group may be smaller). */
  constructor(
    private readonly family: BatchFamily,
    private readonly onResults: (results: BatchResult[]) => void,
    private readonly groupSize = GROUP,
  ) {}

  push(chunk: Uint8Array): void {
    if (this.#off) return;
    const text = this.#decoder.decode(chunk, { stream: true });
    if (this.#opening) {
      const start = text.search(/\S/);
      if (start === -1) return;
      this.#opening = false;
      // Any results line is a JSON object; a binary or text file is done with at its first character.
      if (text[start] !== "{" && text[start] !== "\ufeff") {
        this.#off = true;
        return;
      }
    }
    let from = 0;
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", from)) {
      const line = this.#pieces.length ? this.#pieces.join("") + text.slice(from, nl) : text.slice(from, nl);
      const skipped = this.#skipping;
      this.#pieces = [];
      this.#pieceChars = 0;
      this.#skipping = false;
      from = nl + 1;
      if (!skipped) this.#line(line);
      if (this.#off) return;
    }
    if (from < text.length && !this.#skipping) {
      this.#pieces.push(text.slice(from));
      this.#pieceChars += text.length - from;
      // A first line long past where a results line names its request, without a name: another file (a
      // JSON document, say), not read to its end.
      if (this.#first && !this.#firstNamed && this.#pieceChars > NAMED_WITHIN_CHARS) {
        const start = this.#pieces.join("");
        this.#pieces = [start];
        this.#firstNamed = namesRequestEarly(start);
        if (!this.#firstNamed) {
          this.#off = true;
          this.#pieces = [];
          return;
        }
      }
      if (this.#pieceChars > MAX_LINE_CHARS) {
        this.#pieces = [];
        this.#skipping = true;
      }
    }
  }

  /** The download ended: `whole` when it came to its end (its last line may lack a newline). */
  end(whole: boolean): void {
    if (!this.#off && whole && !this.#skipping) this.#line(this.#pieces.join("") + this.#decoder.decode());
    this.#pieces = [];
    this.#flush();
  }

  #line(text: string): void {
    const line = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text; // a byte-order mark
    if (line.trim() === "") return;
    // Cheap first: every results line names its request.
    let parsed: unknown = null;
    if (line.includes('"custom_id"')) {
      try {
        parsed = JSON.parse(skimJson(line));
      } catch {
        parsed = null;
      }
    }
    if (this.#first) {
      this.#first = false;
      // The same test as for a first line still under way: what is read does not depend on the chunks.
      if (!namesRequestEarly(line) || !isResultsLine(parsed)) {
        this.#off = true; // a batch's input, training data, an image: no results here
        return;
      }
    }
    const result = batchResult(this.family, parsed);
    if (!result) return; // failed, expired or cancelled: not billed
    this.#group.push(result);
    if (this.#group.length >= this.groupSize) this.#flush();
  }

  #flush(): void {
    if (!this.#group.length) return;
    const group = this.#group;
    this.#group = [];
    this.onResults(group);
  }
}

/** Whether a line (or its start) names its request within its first NAMED_WITHIN_CHARS characters. */
function namesRequestEarly(line: string): boolean {
  return line.trimStart().slice(0, NAMED_WITHIN_CHARS).includes('"custom_id"');
}

/** A results line of either provider: `{custom_id, response|error}` (OpenAI) or `{custom_id, result}` (Anthropic). */
function isResultsLine(v: unknown): boolean {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.custom_id === "string" && ("response" in o || "result" in o);
}
