/**
 * OpenAI Responses run in the background (`background: true`) answer at once, `queued`, with no usage;
 * the client then polls `GET /v1/responses/{id}` until the response is finished, usage and all.
 */
export interface BackgroundResponse {
  id: string;
  status: string;
}

const PENDING: ReadonlySet<string> = new Set(["queued", "in_progress"]);
const FINISHED: ReadonlySet<string> = new Set(["completed", "incomplete", "failed", "cancelled"]);

/** The Responses object of a reply when it runs in the background, else null. */
export function backgroundResponse(json: Record<string, unknown>): BackgroundResponse | null {
  if (json.object !== "response" || json.background !== true) return null;
  if (typeof json.id !== "string" || json.id === "" || typeof json.status !== "string") return null;
  return { id: json.id, status: json.status };
}

export const isPending = (r: BackgroundResponse): boolean => PENDING.has(r.status);
export const isFinished = (r: BackgroundResponse): boolean => FINISHED.has(r.status);
