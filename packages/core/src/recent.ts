/** What a process remembers of recent things (background responses, by id); the oldest go first. Bounded. */
export class Recent<V> {
  readonly #entries = new Map<string, V>();
  readonly #max: number;
  /** Told of each entry pushed out by a newer one past `max` (not of one deleted or set again). */
  readonly #forgotten: ((value: V) => void) | undefined;
  constructor({ max = 10_000, forgotten }: { max?: number; forgotten?: (value: V) => void } = {}) {
    this.#max = max;
    this.#forgotten = forgotten;
  }

  /** False (and nothing changes) when `id` is already there. */
  add(id: string, value: V): boolean {
    if (this.#entries.has(id)) return false;
    this.set(id, value);
    return true;
  }

  /** Puts `value` under `id`, in place of any older one (as the newest). */
  set(id: string, value: V): void {
    this.#entries.delete(id);
    const oldest = this.#entries.size >= this.#max ? this.#entries.entries().next().value : undefined;
    if (oldest) this.#entries.delete(oldest[0]);
    this.#entries.set(id, value);
    if (oldest) this.#forgotten?.(oldest[1]); // told once the newer one is in: it may read this again
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
