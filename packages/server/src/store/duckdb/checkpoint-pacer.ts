import { statSync } from "node:fs";
import { wholeNumberFromEnv } from "../../config.js";

export interface CheckpointPacerOptions {
  /** How often the WAL is looked at. */
  everyMs?: number;
  /** The smallest WAL worth a checkpoint. */
  minWalBytes?: number;
  /** A WAL growing at least this fast (bytes per second) is a bulk load, left to DuckDB's own threshold. */
  bulkBytesPerSec?: number;
}

const MB = 1024 * 1024;
const DEFAULTS: Required<CheckpointPacerOptions> = {
  // A stat of the WAL: looking often costs nothing, and a saturated gateway's WAL grows ~6 MB between looks.
  everyMs: 1_000,
  // Roughly 45,000 gateway calls, held in memory as ~30 MB of uncompressed rows.
  minWalBytes: 32 * MB,
  // A saturated gateway on 2 cores writes ~6 MB/s of WAL; OTLP ingest ~17 MB/s, /v1/events ~40 MB/s.
  bulkBytesPerSec: 8 * MB,
};

/**
 * TOLLGATE_CHECKPOINT_WAL_MB: the smallest WAL the pacer checkpoints, 1 to 256 (default 32; DuckDB's own
 * threshold fires at 256). Less holds fewer rows in memory between checkpoints, for more checkpoints; a
 * bulk load is left to DuckDB's threshold either way.
 */
export function checkpointWalBytesFrom(env: NodeJS.ProcessEnv = process.env): number {
  const mb = wholeNumberFromEnv(env, "TOLLGATE_CHECKPOINT_WAL_MB", { fallback: 32, max: 256 });
  if (mb < 1) throw new Error("TOLLGATE_CHECKPOINT_WAL_MB must be at least 1, got 0");
  return mb * MB;
}

/**
 * Whether a WAL of `walBytes`, grown by `grownBytes` in the last `elapsedMs`, should be checkpointed now.
 * Until a checkpoint DuckDB keeps every appended row in memory, uncompressed; its own trigger fires only
 * at checkpoint_threshold (set high because checkpoints every 16–32 MB cut bulk ingest by up to a third). So a
 * bulk load is left to that threshold, and any slower traffic (a gateway's, or a load that ended) is
 * checkpointed once its WAL is big enough, which keeps memory bounded.
 */
export function checkpointDue(
  walBytes: number,
  grownBytes: number,
  elapsedMs: number,
  opts: Pick<Required<CheckpointPacerOptions>, "minWalBytes" | "bulkBytesPerSec">,
): boolean {
  return walBytes > 0 && walBytes >= opts.minWalBytes && grownBytes * 1000 < opts.bulkBytesPerSec * elapsedMs;
}

/** Checkpoints the database behind `walPath` when checkpointDue says so, on a timer. */
export class CheckpointPacer {
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #opts: Required<CheckpointPacerOptions>;
  #lastWalBytes = 0;
  #lastLook = performance.now();
  #running: Promise<boolean> | null = null;

  constructor(
    private readonly walPath: string,
    private readonly checkpoint: () => Promise<void>,
    opts: CheckpointPacerOptions = {},
  ) {
    this.#opts = { ...DEFAULTS, ...opts };
    this.#timer = setInterval(() => void this.tick(), this.#opts.everyMs);
    this.#timer.unref();
  }

  /** Looks at the WAL once and checkpoints if due; true when it did. A failed checkpoint is retried at a later tick. */
  tick(): Promise<boolean> {
    this.#running ??= this.#tick().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  async #tick(): Promise<boolean> {
    const wal = walSize(this.walPath);
    const now = performance.now();
    const due = checkpointDue(wal, wal - this.#lastWalBytes, now - this.#lastLook, this.#opts);
    this.#lastWalBytes = wal;
    this.#lastLook = now;
    if (!due) return false;
    try {
      await this.checkpoint();
    } catch {
      return false; // e.g. a concurrent transaction DuckDB would not checkpoint past: next tick
    }
    this.#lastWalBytes = walSize(this.walPath);
    return true;
  }

  /** Stops the timer and waits for a checkpoint under way. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}

function walSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0; // no WAL: nothing written since the last checkpoint
  }
}
