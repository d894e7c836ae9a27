import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

/** Hears every change of a lease's state: `true` when it is gained, `false` when it is lost or released. */
export type LeaseListener = (held: boolean) => void;

/**
 * The right to run the scheduled jobs. However many processes share one lease, at most one holds it at a
 * time, and the scheduler (scheduler.ts) runs jobs only while `held()` is true. The lease also keeps each
 * job's last run, written only by the holder, so that a new holder keeps the schedule instead of
 * starting it over (a takeover does not run a job twice in one interval).
 */
export interface JobLease {
  readonly backend: "in-process" | "redis";
  /** Who this process is in the lease (hostname, pid, random suffix). */
  readonly holderId: string;
  /** True while this process holds the lease: jobs may run. */
  held(): boolean;
  /** Who holds the lease as last seen by this process (null: nobody, or not known). */
  holder(): string | null;
  /** Starts acquiring (and, once held, keeping) the lease; `onChange` hears every gain and loss. */
  start(onChange: LeaseListener): void;
  /** Gives the lease up (another process may take it at once) and stops trying to acquire it. */
  release(): Promise<void>;
  /** When a job last started, by any holder (epoch ms); null when never. */
  lastRun(job: string): Promise<number | null>;
  /**
   * Records that a job starts now, only while this process holds the lease: false (and nothing recorded)
   * when it does not. The scheduler runs a job only after this answers true.
   */
  recordRun(job: string, at: number): Promise<boolean>;
}

export const newHolderId = (): string => `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;

/**
 * The lease of a process that is alone: always held while started. Used by `serve --role all` (the
 * embedded single-process server) and by a worker without Redis.
 */
export class InProcessLease implements JobLease {
  readonly backend = "in-process";
  readonly holderId = newHolderId();
  readonly #runs = new Map<string, number>();
  #held = false;
  #listener: LeaseListener | null = null;

  held(): boolean {
    return this.#held;
  }

  holder(): string | null {
    return this.#held ? this.holderId : null;
  }

  start(onChange: LeaseListener): void {
    this.#listener = onChange;
    this.#held = true;
    onChange(true);
  }

  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    this.#listener?.(false);
  }

  async lastRun(job: string): Promise<number | null> {
    return this.#runs.get(job) ?? null;
  }

  async recordRun(job: string, at: number): Promise<boolean> {
    if (!this.#held) return false;
    this.#runs.set(job, at);
    return true;
  }
}
