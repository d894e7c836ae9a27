/**
 * The gateway's own reads of the store on behalf of calls (is a finished background response recorded
 * already?), each waited for `timeoutMs` at most and at most `max` of them with the store at a time. A read
 * that timed out is still the store's work, and still held here, until the store answers it: started at the
 * pace of traffic regardless, reads of a store that has fallen behind (busy, or starved of CPU) would pile up
 * in memory, and in the store's own queue, without bound. Past `max`, a read waits for its turn, within its
 * `timeoutMs` (then it finds nothing, as one that timed out does): found nothing at once, a response recorded
 * before would be recorded once more (kept once by its event id, in the store and in its budgets, but all
 * that work done again).
 */
export class StoreLookups {
  #inFlight = 0;
  /** The reads waiting for their turn, oldest first; each leaves at its timeout. */
  readonly #waiting = new Set<() => void>();

  constructor(
    private readonly max: number,
    private readonly timeoutMs: number,
  ) {}

  /** What `read` finds, or nothing: when it fails, or has not found it within `timeoutMs` of this call. */
  find<T>(read: () => Promise<T[]>): Promise<T[]> {
    return new Promise((resolve) => {
      const start = () => {
        this.#waiting.delete(start);
        this.#inFlight++;
        const found = (async () => read())(); // a read that throws is a lookup that failed, and is done
        found
          .then(resolve, () => resolve([]))
          .finally(() => {
            clearTimeout(timer);
            this.#done();
          });
      };
      const timer = setTimeout(() => {
        this.#waiting.delete(start);
        resolve([]);
      }, this.timeoutMs);
      if (this.#inFlight < this.max) start();
      else this.#waiting.add(start);
    });
  }

  /** What `read` finds, as find() does, where the store has room for it now; else nothing, at once. */
  findIfRoom<T>(read: () => Promise<T[]>): Promise<T[]> {
    return this.#inFlight < this.max ? this.find(read) : Promise.resolve([]);
  }

  /** A read is answered: the oldest waiting takes its turn. */
  #done(): void {
    this.#inFlight--;
    const next = this.#waiting.values().next();
    if (!next.done) next.value();
  }
}
