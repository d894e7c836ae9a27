/**
 * Keys kept until each lapses, at most `max` (the oldest go first), with when each was added. Pruning goes
 * in insertion order and stops at the first live key: keys mostly given one lifetime lapse in that order, and
 * a key given a longer one only keeps those after it a while longer (within `max`).
 */
export class LapsingKeys {
  readonly #kept = new Map<string, { since: number; until: number }>();
  #keptAfter = Number.NEGATIVE_INFINITY;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.#kept.size;
  }

  /**
   * Every key added after this instant is kept until it lapses (or is taken): when the newest key let go
   * past `max` was added (-Infinity: none was).
   */
  get keptAfter(): number {
    return this.#keptAfter;
  }

  /** Keeps `key` from `now` until `until` (renewed: last in line), dropping the keys lapsed by `now`. */
  add(key: string, until: number, now: number): void {
    for (const [k, { until: lapses }] of this.#kept) {
      if (lapses > now) break;
      this.#kept.delete(k);
    }
    this.#kept.delete(key);
    this.#kept.set(key, { since: now, until });
    if (this.#kept.size > this.max) {
      const [oldest, { since }] = this.#kept.entries().next().value!;
      this.#kept.delete(oldest);
      this.#keptAfter = Math.max(this.#keptAfter, since);
    }
  }

  /** When `key` was added, if it is kept and has not lapsed by `now`. */
  since(key: string, now: number): number | undefined {
    const kept = this.#kept.get(key);
    return kept !== undefined && kept.until > now ? kept.since : undefined;
  }

  /** Whether `key` is kept and has not lapsed by `now`. */
  has(key: string, now: number): boolean {
    return this.since(key, now) !== undefined;
  }

  /** Drops `key`; whether it was kept and had not lapsed by `now`. */
  take(key: string, now: number): boolean {
    const live = this.has(key, now);
    this.#kept.delete(key);
    return live;
  }
}
