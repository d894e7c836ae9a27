/**
 * Exports that share a trace take turns in this process: each waits until the earlier ones are stored
 * before it reads the store, so a wrapper and the call it wraps, exported at the same moment
 * (SimpleSpanProcessor sends each span as it ends, without waiting for the one before), see each other.
 * Replicas do not share turns: two of them storing a wrapper and its call at the same moment may still
 * both price them.
 */
export class TraceTurns {
  /** The latest turn taken on each key; each turn ends after the ones before it. */
  readonly #last = new Map<string, Promise<void>>();

  /**
   * Takes a turn on every key (at once, when called) and resolves once the earlier turns on any of them
   * have ended, with the function that ends this one.
   */
  async take(keys: Iterable<string>): Promise<() => void> {
    let end!: () => void;
    const mine = new Promise<void>((resolve) => {
      end = resolve;
    });
    const held: string[] = [];
    const earlier: Promise<void>[] = [];
    for (const key of keys) {
      const before = this.#last.get(key);
      if (before) earlier.push(before);
      this.#last.set(key, mine);
      held.push(key);
    }
    await Promise.all(earlier);
    return () => {
      end();
      for (const key of held) if (this.#last.get(key) === mine) this.#last.delete(key);
    };
  }
}
