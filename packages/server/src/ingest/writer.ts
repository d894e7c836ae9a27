import type { CallRecord } from "@tollgate/core";
import type { EventStore } from "../store/types.js";

interface Pending {
  records: readonly CallRecord[];
  resolve: (accepted: boolean[]) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: batches that arrive while the store is busy are written together in one transaction,
 * so concurrent requests share one commit. Each caller learns, per record, whether it was newly stored
 * (true) or already known (false, a duplicate), only after the commit is durable.
 */
export class GroupCommitWriter {
  #pending: Pending[] = [];
  #running = false;

  constructor(
    private readonly store: EventStore,
    private readonly maxRows = 20_000,
  ) {}

  write(records: readonly CallRecord[]): Promise<boolean[]> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ records, resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    while (this.#pending.length) {
      const group: Pending[] = [];
      let rows = 0;
      while (this.#pending.length && (rows === 0 || rows + this.#pending[0]!.records.length <= this.maxRows)) {
        const p = this.#pending.shift()!;
        group.push(p);
        rows += p.records.length;
      }
      await this.#commit(group);
    }
    this.#running = false;
  }

  async #commit(group: Pending[]): Promise<void> {
    // The first occurrence of an event_id in the group owns it; later ones are duplicates.
    const owned = new Set<string>();
    const batch: CallRecord[] = [];
    const owns = group.map((p) =>
      p.records.map((r) => {
        if (owned.has(r.event_id)) return false;
        owned.add(r.event_id);
        batch.push(r);
        return true;
      }),
    );
    try {
      const { inserted } = await this.store.append(batch);
      group.forEach((p, i) => p.resolve(p.records.map((r, j) => owns[i]![j]! && inserted.has(r.event_id))));
    } catch (e) {
      for (const p of group) p.reject(e);
    }
  }
}
