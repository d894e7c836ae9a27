/**
 * Claims on event ids while a batch is being inserted. ClickHouse has no unique key, so the store checks
 * which ids are already stored before inserting; a claim makes that check and the insert one step
 * against other writers (other replicas) appending the same ids at the same moment, e.g. a retry sent
 * to a second replica while the first is still inserting.
 */
export interface IdClaims {
  /** Claims every key or none: the keys already claimed by someone else when any is (else []). */
  claim(keys: readonly string[]): Promise<string[]>;
  release(keys: readonly string[]): Promise<void>;
  /**
   * The insert under these claims may still land (its answer was lost): they are not released but lapse
   * after their time to live, so a retry meanwhile waits instead of inserting the ids a second time.
   */
  abandon(keys: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** Longer than the longest insert (the client's request timeout): a crashed holder's claims lapse. */
export const CLAIM_TTL_MS = 120_000;

/** Claims within one process: enough when it is the only writer of the database. */
export class LocalClaims implements IdClaims {
  readonly #held = new Set<string>();
  readonly #lapsing = new Set<NodeJS.Timeout>();

  constructor(private readonly ttlMs = CLAIM_TTL_MS) {}

  async claim(keys: readonly string[]): Promise<string[]> {
    const busy = keys.filter((k) => this.#held.has(k));
    if (busy.length === 0) for (const k of keys) this.#held.add(k);
    return busy;
  }

  async release(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.#held.delete(k);
  }

  async abandon(keys: readonly string[]): Promise<void> {
    const lapse = setTimeout(() => {
      this.#lapsing.delete(lapse);
      for (const k of keys) this.#held.delete(k);
    }, this.ttlMs);
    lapse.unref();
    this.#lapsing.add(lapse);
  }

  async close(): Promise<void> {
    for (const t of this.#lapsing) clearTimeout(t);
  }
}
