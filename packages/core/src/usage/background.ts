import { fieldText } from "../record/field-text.js";
import { INPUT_LIMITS } from "../record/schema.js";

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
