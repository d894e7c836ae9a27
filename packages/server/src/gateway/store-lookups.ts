import { withTimeout } from "../with-timeout.js";

/**
 * The gateway's own reads of the store on behalf of calls (is a finished background response recorded
 * already?), each waited for `timeoutMs` at most and at most `max` of them with the store at a time. A read
 * that timed out is still the store's work, and still held here, until the store answers it: started at the
 * pace of traffic regardless, reads of a store that has fallen behind (busy, or starved of CPU) would pile up
 * in memory, and in the store's own queue, without bound. Past `max`, a read finds nothing at once, as one
 * that timed out does.
 */
export class StoreLookups {
  #inFlight = 0;

  constructor(
    private readonly max: number,
    private readonly timeoutMs: number,
  ) {}

  /** What `read` finds, or nothing: when it fails, times out, or `max` reads are still with the store. */
  find<T>(read: () => Promise<T[]>): Promise<T[]> {
    if (this.#inFlight >= this.max) return Promise.resolve([]);
    this.#inFlight++;
    const found = (async () => read())(); // a read that throws is a lookup that failed, and is done
    const done = () => {
      this.#inFlight--;
    };
    found.then(done, done);
    return withTimeout(found, this.timeoutMs, "store lookup").catch(() => []);
  }
}
