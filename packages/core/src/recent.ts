/** A value and the count of entries put in before it: entries are in the order of `at`. */
interface Entry<V> {
  value: V;
  at: number;
}

/** What a process remembers of recent things (background responses, by id); the oldest go first. Bounded. */
export class Recent<V> {
  readonly #entries = new Map<string, Entry<V>>();
  #puts = 0;
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
    this.#entries.set(id, { value, at: this.#puts++ });
    if (oldest) this.#forgotten?.(oldest[1].value); // told once the newer one is in: it may read this again
  }

  get(id: string): V | undefined {
    return this.#entries.get(id)?.value;
  }

  /**
   * The value under `id`, kept from going first: an entry read at least once every max / 2 entries put in
   * is never pushed out (least recently used go first), where get() leaves the order to when entries were
   * set. One read in the newer half stays where it is: moved on every read, a hot entry cost microseconds
   * a read on a full map (each move leaves a deleted slot in its hash chain until V8 rehashes).
   */
  touch(id: string): V | undefined {
    const entry = this.#entries.get(id);
    if (entry !== undefined && this.#puts - entry.at > this.#max / 2) {
      this.#entries.delete(id);
      entry.at = this.#puts++;
      this.#entries.set(id, entry);
    }
    return entry?.value;
  }

  get size(): number {
    return this.#entries.size;
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  delete(id: string): void {
    this.#entries.delete(id);
  }
}
