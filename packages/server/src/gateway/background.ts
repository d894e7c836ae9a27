// Background responses as the gateway sees them on the wire; what a Responses object says of itself is in
// core (backgroundResponse).

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
