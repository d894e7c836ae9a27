/**
 * Producers waiting for room (a queue to drain below its mark): each wait ends at wakeAll() or after its
 * `maxMs`, whichever comes first, so a consumer that stalls never stalls a producer for long. A wait never
 * keeps the process alive.
 */
export class WaitList {
  #waiters: (() => void)[] = [];

  wait(maxMs: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(wake), 1);
        resolve();
      }, maxMs);
      (timer as { unref?: () => void }).unref?.();
      this.#waiters.push(wake);
    });
  }

  /** Ends every wait under way. */
  wakeAll(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
