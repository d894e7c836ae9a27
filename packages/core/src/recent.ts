/** What a process remembers of recent things (background responses, by id); the oldest go first. Bounded. */
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

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  delete(id: string): void {
    this.#entries.delete(id);
  }
}
