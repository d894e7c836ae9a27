/** Backoff between tries while the backend does not answer: from MIN_MS, doubling, up to MAX_MS. */
const MIN_MS = 100;
const MAX_MS = 5_000;

interface Job {
  what: string;
  run: () => Promise<unknown>;
  /** Called if the job is given up (dropped, or left at shutdown), so that nobody waits on it for ever. */
  giveUp?: () => void;
}

/**
 * Writes to the limit backend that failed and must still be made once it answers again (a call's settle,
 * an ingested call's charge, lease consumption, taking back what a failed admission may have reserved).
 * Each job must be safe to repeat: one that failed may have run all the same (its reply lost). Tried in
 * order, one at a time; at most `max` wait (the oldest is dropped, and logged), so an outage costs bounded
 * memory.
 */
export class RetryQueue {
  readonly #jobs: Job[] = [];
  #delay = MIN_MS;
  #timer: NodeJS.Timeout | null = null;
  #running = false;

  constructor(
    private readonly log: (msg: string) => void,
    private readonly max = 10_000,
  ) {}

  /**
   * Makes a write now, or queues it: when it fails, and without trying it while earlier writes still wait
   * (they land in order, and a backend that does not answer holds up no caller once per write).
   */
  async write(what: string, run: () => Promise<unknown>, giveUp?: () => void): Promise<void> {
    if (!this.#jobs.length)
      try {
        await run();
        return;
      } catch (e) {
        this.log(`limits: ${what} failed, retrying until the backend answers: ${(e as Error).message}`);
      }
    this.push(what, run, giveUp);
  }

  push(what: string, run: () => Promise<unknown>, giveUp?: () => void): void {
    if (this.#jobs.length >= this.max) {
      const dropped = this.#jobs.shift()!;
      this.log(`limits: too many writes waiting, dropped ${dropped.what}`);
      dropped.giveUp?.();
    }
    this.#jobs.push({ what, run, giveUp });
    this.#schedule();
  }

  /**
   * Tries the waiting jobs once more now (at shutdown), in order, until one fails: a backend that still
   * does not answer would hold shutdown for each of them. The rest are given up, and logged.
   */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const jobs = this.#jobs.splice(0);
    let done = 0;
    try {
      for (const job of jobs) {
        await job.run();
        done++;
      }
    } catch {
      this.log(`limits: gave up on ${jobs.length - done} writes the backend never took`);
      for (const job of jobs.slice(done)) job.giveUp?.();
    }
  }

  #schedule(): void {
    if (this.#timer || this.#running || !this.#jobs.length) return;
    this.#timer = setTimeout(() => void this.#drain(), this.#delay);
    this.#timer.unref();
  }

  async #drain(): Promise<void> {
    this.#timer = null;
    this.#running = true;
    try {
      while (this.#jobs.length) {
        const job = this.#jobs[0]!;
        await job.run();
        if (this.#jobs[0] === job) this.#jobs.shift(); // unless flush or an overflow took it meanwhile
        this.#delay = MIN_MS;
      }
    } catch {
      this.#delay = Math.min(this.#delay * 2, MAX_MS);
    } finally {
      this.#running = false;
      this.#schedule();
    }
  }
}
