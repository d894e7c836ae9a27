import { type CallRecord, storedRecordProblem } from "@tollgate/core";
import { type EventStore, recordKey } from "../store/types.js";

interface Pending {
  records: readonly CallRecord[];
  /** recordKey of each record, computed once. */
  keys: string[];
  resolve: (accepted: boolean[]) => void;
  reject: (e: unknown) => void;
}

export interface CommitRefusal {
  /** The first refusal since the store last took a commit (epoch ms). */
  since: number;
  /** The last refusal (epoch ms). */
  at: number;
  /** The store's error. */
  message: string;
}

export interface WriterOptions {
  /** Most rows in one commit. */
  maxRows?: number;
  /** Commits in flight at once (the store must accept concurrent appends of disjoint ids). */
  concurrency?: number;
}

/**
 * Group commit: batches that arrive while the store is busy are written together in one transaction,
 * so concurrent requests share one commit. Each caller learns, per record, whether it was newly stored
 * (true) or already known (false, a duplicate), only after the commit is durable. Groups in flight
 * never share an event_id: a batch that repeats an in-flight id waits for that commit, so the answer
 * "duplicate" is only ever given for an event that is really stored.
 */
export class GroupCommitWriter {
  readonly #pending: Pending[] = [];
  readonly #inFlight = new Set<string>();
  readonly #maxRows: number;
  readonly #concurrency: number;
  #running = 0;
  /** Records written and not settled yet (waiting for their commit, or in it). */
  #backlog = 0;
  /** Callers of `quiet` in progress: no commit starts while one is. */
  #quieting = 0;
  /** Resolved when the last commit in flight ends. */
  #idle: (() => void)[] = [];
  #refused: CommitRefusal | null = null;
  /** Commits started so far: each is numbered, so an outcome older than the one `refused` holds is ignored. */
  #commits = 0;
  /** The number of the commit whose outcome `refused` says (taken or refused). */
  #refusedBy = 0;

  constructor(
    private readonly store: EventStore,
    opts: WriterOptions = {},
  ) {
    this.#maxRows = opts.maxRows ?? 20_000;
    this.#concurrency = opts.concurrency ?? 1;
  }

  /** Records written and not committed (or refused) yet: what the store is behind by, held in memory. */
  get backlog(): number {
    return this.#backlog;
  }

  /**
   * The last commit, when the store refused it (a full disk, a store that takes reads and not writes) and
   * none started since has been taken: a store that answers reads is not always one that stores calls.
   */
  get refused(): CommitRefusal | null {
    return this.#refused;
  }

  write(records: readonly CallRecord[]): Promise<boolean[]> {
    this.#backlog += records.length;
    return new Promise<boolean[]>((resolve, reject) => {
      const keys = records.map((r) => recordKey(r.workspace_id, r.event_id));
      this.#pending.push({ records, keys, resolve, reject });
      this.#pump();
    }).finally(() => {
      this.#backlog -= records.length;
    });
  }

  /**
   * Runs `fn` while no commit is in flight and none starts: what the store holds stays as it is (a budget
   * seeded from it meanwhile sees every call stored so far, and none stored after). Writes wait meanwhile.
   */
  async quiet<T>(fn: () => Promise<T>): Promise<T> {
    this.#quieting++;
    try {
      if (this.#running) await new Promise<void>((resolve) => this.#idle.push(resolve));
      return await fn();
    } finally {
      this.#quieting--;
      this.#pump();
    }
  }

  #pump(): void {
    if (!this.#running) for (const wake of this.#idle.splice(0)) wake();
    while (!this.#quieting && this.#running < this.#concurrency && this.#pending.length) {
      const group: Pending[] = [];
      let rows = 0;
      while (this.#pending.length) {
        const next = this.#pending[0]!;
        if (rows > 0 && rows + next.records.length > this.#maxRows) break;
        if (next.keys.some((k) => this.#inFlight.has(k))) break;
        group.push(this.#pending.shift()!);
        rows += next.records.length;
      }
      if (!group.length) return; // the head waits for an in-flight commit of one of its ids
      this.#running++;
      void this.#commit(group).finally(() => {
        this.#running--;
        this.#pump();
      });
    }
  }

  async #commit(group: Pending[]): Promise<void> {
    // The first occurrence of a (workspace, event_id) in the group owns it; later ones are duplicates.
    const owned = new Set<string>();
    const batch: CallRecord[] = [];
    const owns = group.map(({ keys }, i) =>
      keys.map((k, j) => {
        if (owned.has(k)) return false;
        owned.add(k);
        batch.push(group[i]!.records[j]!);
        return true;
      }),
    );
    for (const id of owned) this.#inFlight.add(id);
    // Commits in flight at once settle in any order: an outcome counts only if its commit started after the
    // one `refused` goes by (a commit begun before the disk filled may be taken after a later one failed).
    const n = ++this.#commits;
    try {
      const { inserted } = await this.store.append(batch);
      if (n > this.#refusedBy) [this.#refused, this.#refusedBy] = [null, n];
      group.forEach((p, i) => {
        p.resolve(p.keys.map((k, j) => owns[i]![j]! && inserted.has(k)));
      });
    } catch (e) {
      // A damaged batch (a spool line that still parses) must not fail the others that shared its commit:
      // it is refused, and they are committed again without it. A store that is down fails them all at
      // once: retrying each alone would only multiply the wait.
      const damaged = group.filter((p) => p.records.some((r) => storedRecordProblem(r) !== null));
      const sound = group.filter((p) => !damaged.includes(p));
      // Only sound records refused say the store fails; a damaged one's refusal says nothing of it.
      if (!damaged.length && n > this.#refusedBy) {
        const at = Date.now();
        const message = e instanceof Error ? e.message : String(e);
        this.#refused = { since: this.#refused?.since ?? at, at, message };
        this.#refusedBy = n;
      }
      if (!damaged.length || !sound.length) for (const p of group) p.reject(e);
      else {
        for (const p of damaged) p.reject(e);
        await this.#commit(sound);
      }
    } finally {
      for (const id of owned) this.#inFlight.delete(id);
    }
  }
}
