import type { JobLease } from "./lease.js";

/** One scheduled job. Jobs should be idempotent: a run cut short by a lost lease may be retried. */
export interface Job {
  /** Unique among jobs; names the job in logs, metrics and the lease's run times. */
  readonly name: string;
  readonly everyMs: number;
  /** `signal` aborts when the lease is lost or the process stops: stop at the next safe point. */
  run(signal: AbortSignal): Promise<void>;
}

export interface SchedulerOptions {
  log: (msg: string) => void;
  /** Called after every run (for metrics). */
  onRun?: (job: string, outcome: "ok" | "error", ms: number) => void;
}

/**
 * Runs jobs while, and only while, the lease is held: each job at most once per `everyMs` across every
 * process sharing the lease (the lease keeps each job's last start, so a new holder picks the schedule up
 * where the old one left it), never two runs of one job at once in this process. A job that has never
 * run (or not for `everyMs`) runs as soon as the lease is held. When the lease is lost, timers stop and
 * running jobs see their signal abort; when it is gained again, the schedule resumes from the last runs.
 */
export class JobScheduler {
  /** Bumped on every gain and loss: a timer or run of an older holding does nothing. */
  #epoch = 0;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #running = new Map<string, { done: Promise<void>; abort: AbortController }>();
  #stopped = false;

  constructor(
    readonly lease: JobLease,
    readonly jobs: readonly Job[],
    private readonly opts: SchedulerOptions,
  ) {
    const names = new Set(jobs.map((j) => j.name));
    if (names.size !== jobs.length) throw new Error("job names must be unique");
  }

  start(): void {
    this.lease.start((held) => this.#onLease(held));
  }

  /** Stops scheduling, aborts and awaits running jobs, then releases the lease. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#pause();
    await Promise.all([...this.#running.values()].map((r) => r.done));
    await this.lease.release();
  }

  #onLease(held: boolean): void {
    this.#pause();
    if (!held || this.#stopped) return;
    const epoch = this.#epoch;
    for (const job of this.jobs) void this.#plan(job, epoch);
  }

  #pause(): void {
    this.#epoch++;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    for (const r of this.#running.values()) r.abort.abort(new Error("job lease lost"));
  }

  #current(epoch: number): boolean {
    return epoch === this.#epoch && !this.#stopped && this.lease.held();
  }

  /** Sets the job's timer from its last run (shared through the lease). */
  async #plan(job: Job, epoch: number): Promise<void> {
    let last: number | null;
    try {
      last = await this.lease.lastRun(job.name);
    } catch (e) {
      if (!this.#current(epoch)) return;
      this.opts.log(`job ${job.name}: last run unknown (${(e as Error).message}); asking again`);
      return this.#at(job, epoch, 1000, () => this.#plan(job, epoch));
    }
    this.#fireAt(job, epoch, last === null ? 0 : last + job.everyMs);
  }

  #at(job: Job, epoch: number, ms: number, fn: () => Promise<void>): void {
    if (!this.#current(epoch)) return;
    const t = setTimeout(() => {
      this.#timers.delete(job.name);
      void fn();
    }, ms);
    t.unref();
    this.#timers.set(job.name, t);
  }

  /** Fires the job at epoch ms `due`, not before. */
  #fireAt(job: Job, epoch: number, due: number): void {
    this.#at(job, epoch, Math.max(0, due - Date.now()), () => this.#fire(job, epoch, due));
  }

  async #fire(job: Job, epoch: number, due: number): Promise<void> {
    // A run of an earlier holding may still be finishing (it saw its signal abort): never two at once.
    await this.#running.get(job.name)?.done;
    if (!this.#current(epoch)) return;
    const at = Date.now();
    // Timers count from the event loop's cached clock, so one may fire a few ms before `due` by Date.now().
    if (at < due) return this.#fireAt(job, epoch, due);
    if (!(await this.lease.recordRun(job.name, at)) || !this.#current(epoch)) return;
    const abort = new AbortController();
    const started = performance.now();
    const done = (async () => {
      let outcome: "ok" | "error" = "ok";
      try {
        await job.run(abort.signal);
      } catch (e) {
        outcome = "error";
        this.opts.log(
          `job ${job.name} failed (next run in ${duration(job.everyMs)}): ${(e as Error).message}`,
        );
      }
      this.opts.onRun?.(job.name, outcome, performance.now() - started);
    })();
    this.#running.set(job.name, { done, abort });
    await done;
    if (this.#running.get(job.name)?.done === done) this.#running.delete(job.name);
    this.#fireAt(job, epoch, at + job.everyMs);
  }
}

const duration = (ms: number) =>
  ms >= 3_600_000 && ms % 3_600_000 === 0
    ? `${ms / 3_600_000} h`
    : ms >= 60_000
      ? `${Math.round(ms / 60_000)} min`
      : `${Math.round(ms / 1000)} s`;
