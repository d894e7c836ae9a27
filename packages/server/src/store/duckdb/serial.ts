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
