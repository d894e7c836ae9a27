import { fieldText } from "../record/field-text.js";
import { INPUT_LIMITS } from "../record/schema.js";
import { isObject, type JsonObject } from "./read.js";
import { skimJson } from "./skim.js";
import { SseParser } from "./sse.js";

/**
 * OpenAI Responses run in the background (`background: true`) answer at once, `queued`, with no usage;
 * the client then polls `GET /v1/responses/{id}` until the response is finished, usage and all.
 */
export interface BackgroundResponse {
  id: string;
  status: string;
  /** When it was created (epoch ms), when the object says. */
  createdMs: number | null;
  /** Why it failed, as a record's error_type: its error's code (server_error, …), else its status; null when it did not fail. */
  failure: string | null;
}

const PENDING: ReadonlySet<string> = new Set(["queued", "in_progress"]);
const FINISHED: ReadonlySet<string> = new Set(["completed", "incomplete", "failed", "cancelled"]);

/** The Responses object of a reply when it runs in the background, else null. */
export function backgroundResponse(json: Record<string, unknown>): BackgroundResponse | null {
  if (json.object !== "response" || json.background !== true) return null;
  if (typeof json.id !== "string" || json.id === "" || typeof json.status !== "string") return null;
  const created = json.created_at;
  return {
    id: json.id,
    status: json.status,
    createdMs: typeof created === "number" && Number.isFinite(created) ? Math.round(created * 1000) : null,
    failure: json.status === "failed" || json.status === "cancelled" ? failureOf(json, json.status) : null,
  };
}

function failureOf(json: Record<string, unknown>, status: string): string {
  const error = (json.error ?? {}) as { code?: unknown; type?: unknown };
  const named = [error.code, error.type].find((t): t is string => typeof t === "string" && t !== "");
  return fieldText(named ?? status, INPUT_LIMITS.shortText)!;
}

export const isPending = (r: BackgroundResponse): boolean => PENDING.has(r.status);
export const isFinished = (r: BackgroundResponse): boolean => FINISHED.has(r.status);

/** Data of the events that end a Responses stream; each carries the whole response, usage and all. */
const FINAL_EVENTS = ["response.completed", "response.incomplete", "response.failed"];
const FINAL_MARKERS = FINAL_EVENTS.map((t) => `"${t}"`);

/** The response a Responses stream's final event (`response.completed`, `.incomplete`, `.failed`) carries, else null. */
export function finalResponseOf(event: unknown): JsonObject | null {
  return isObject(event) && FINAL_EVENTS.includes(event.type as string) && isObject(event.response)
    ? event.response
    : null;
}

/**
 * The response a Responses stream ends with, read as its bytes pass: a background stream resumed with
 * `GET /v1/responses/{id}?stream=true` is how its client learns the response finished, so that event's
 * `response` is what a poll would have found. Only that event's data is decoded; a stream cut short before
 * it (or inside it) has none.
 */
export class FinalResponseReader {
  readonly #decoder = new TextDecoder();
  readonly #parser = new SseParser();
  #response: JsonObject | null = null;

  push(chunk: Uint8Array): void {
    if (this.#response === null)
      this.#consume(this.#parser.push(this.#decoder.decode(chunk, { stream: true })));
  }

  /** The stream ended (whole or not): its final event's response, or null when none came whole. */
  end(): JsonObject | null {
    if (this.#response === null) this.#consume(this.#parser.flush());
    return this.#response;
  }

  #consume(events: readonly { data: string }[]): void {
    for (const { data } of events) {
      if (!FINAL_MARKERS.some((m) => data.includes(m))) continue;
      let event: unknown;
      try {
        event = JSON.parse(skimJson(data));
      } catch {
        continue; // cut inside the event: not the response
      }
      this.#response = finalResponseOf(event);
      if (this.#response) return;
    }
  }
}
