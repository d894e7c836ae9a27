/**
 * Keys kept until each lapses, at most `max` (the oldest go first). Every key of one set is given the same
 * lifetime, so insertion order is lapse order: pruning stops at the first live key.
 */
export class LapsingKeys {
  readonly #until = new Map<string, number>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.#until.size;
  }

  /** Keeps `key` until `until` (renewed: last in line), dropping the keys lapsed by `now`. */
  add(key: string, until: number, now: number): void {
    for (const [k, lapses] of this.#until) {
      if (lapses > now) break;
      this.#until.delete(k);
    }
    this.#until.delete(key);
    this.#until.set(key, until);
    if (this.#until.size > this.max) this.#until.delete(this.#until.keys().next().value!);
  }

  /** Whether `key` is kept and has not lapsed by `now`. */
  has(key: string, now: number): boolean {
    const until = this.#until.get(key);
    return until !== undefined && until > now;
  }

  /** Drops `key`; whether it was kept and had not lapsed by `now`. */
  take(key: string, now: number): boolean {
    const live = this.has(key, now);
    this.#until.delete(key);
    return live;
  }
}
