import type { DuckDBConnection } from "@duckdb/node-api";

/** A DuckDB connection runs one transaction at a time: work on it is queued, in order. */
export class Lane {
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  constructor(readonly conn: DuckDBConnection) {}

  get pending(): number {
    return this.#pending;
  }

  run<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    this.#pending++;
    const next = this.#tail.then(
      () => fn(this.conn),
      () => fn(this.conn),
    );
    this.#tail = next.catch(() => {}).finally(() => this.#pending--);
    return next;
  }
}

/** Work run one at a time, in order (a lock held across awaits). */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => {});
    return next;
  }
}

/**
 * Any number of shared holders at once, or one exclusive holder: it waits for the shared ones to finish
 * and keeps new ones out until it is done.
 */
export class Gate {
  #shared = 0;
  #exclusive: Promise<unknown> | null = null;
  #drained: (() => void) | null = null;

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive.catch(() => {});
    this.#shared++;
    try {
      return await fn();
    } finally {
      if (--this.#shared === 0) this.#drained?.();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive.catch(() => {});
    const run = (async () => {
      if (this.#shared > 0)
        await new Promise<void>((resolve) => {
          this.#drained = resolve;
        });
      this.#drained = null;
      return fn();
    })();
    this.#exclusive = run;
    try {
      return await run;
    } finally {
      this.#exclusive = null;
    }
  }
}
