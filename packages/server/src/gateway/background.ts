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

/** A poll of one response: `GET /v1/responses/{id}`, not its input items, nor a resumed stream. */
export function isResponsePoll(method: string, path: string, query: string): boolean {
  return method === "GET" && /^\/v1\/responses\/[^/]+$/.test(path) && !/(^|&)stream=true(&|$)/.test(query);
}

/** What this process remembers of recent background responses, by id; the oldest go first. Bounded. */
export class Recent<V> {
  readonly #entries = new Map<string, V>();
  constructor(private readonly max = 10_000) {}

  /** False (and nothing changes) when `id` is already there. */
  add(id: string, value: V): boolean {
    if (this.#entries.has(id)) return false;
    this.set(id, value);
    return true;
  }

  /** Puts `value` under `id`, in place of any older one (as the newest). */
  set(id: string, value: V): void {
    this.#entries.delete(id);
    if (this.#entries.size >= this.max) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(id, value);
  }

  get(id: string): V | undefined {
    return this.#entries.get(id);
  }
}
