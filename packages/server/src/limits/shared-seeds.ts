import type { Budget } from "@tollgate/core";
import type { LimitsStateStore } from "../store/types.js";
import { storedSpend } from "./budget-seed.js";
import type { PolicyRegistry } from "./policies.js";
import type { HeldReservation, LimitStore } from "./types.js";
import { inWorkspace } from "./workspace-key.js";

export interface SharedSeedOptions {
  /** How long after a budget appears its calls start counting live: longer than replicas take to learn of it. */
  graceMs: number;
  /**
   * When, after that instant, the store is read again for the calls made before it (in flight, batched or
   * spooled when first read); at the last, seeding ends.
   */
  passesMs: readonly number[];
}

export const DEFAULT_SHARED_SEED: SharedSeedOptions = {
  graceMs: 10_000,
  passesMs: [5_000, 30_000, 300_000, 3_600_000],
};

/** A reservation kept at a call's settle until a seed counts the call (see SharedSeeds.hold). */
export interface Hold extends HeldReservation {
  /** The call's record: released once a pass read the store holding it (at the last pass in any case). */
  eventId: string | null;
}

interface Seeding {
  ws: string;
  id: string;
  /** Which of the budget's seeds (seedOf): an edit that changes it starts another. */
  seed: string;
  from: number;
  /** The next pass (index into passesMs). */
  next: number;
  busy: boolean;
}

const TICK_MS = 500;

/**
 * A budget's seed on the shared counters (its instant and seeded totals): one per window kind, whose slots
 * are its own (a day's are not a month's), so an edit to another kind fills its new slots as a new budget
 * is filled. An edit that keeps the kind (time zone, scope, hours) keeps the slots and what they count.
 * Budget ids never hold "#".
 */
const seedOf = (b: Budget) => `${b.id}#${b.window.kind}`;
/** Kept as a seed's instant is (no budget id holds "#"): when a replica that seeds first started here. */
const STARTED = "#started";

/**
 * Budgets added while running on counters shared by replicas (Redis), where no replica can pause what the
 * others count. A budget counts live the calls made from one instant on, the same for every replica (the
 * first proposed, kept in the limit store): a grace period after it appeared, by which every replica knows
 * of it. The calls of its window made before that instant are its seed, read from the event store. Some of
 * them reach the store later (in flight, batched, spooled), so the seed is read again at each of
 * `passesMs`, and each read raises it to what the store holds by then: every call counts once. The first
 * replica's last pass closes the seed; once its own is done, a replica counts every call live (a call from
 * before the instant ingested later, too).
 */
export class SharedSeeds {
  /** The instant of every budget that has one, by workspace and id. */
  readonly #from = new Map<string, number>();
  /** The seed (seedOf) of every budget as last known here, by workspace and id. */
  readonly #seeds = new Map<string, string>();
  readonly #seeding = new Map<string, Seeding>();
  /** Reservations kept for the calls a seed is to count, by workspace and budget id. */
  readonly #holds = new Map<string, { ws: string; list: Hold[] }>();
  /** Budgets whose instant the limit store did not answer for: asked again at each tick. */
  readonly #unfixed = new Map<string, { ws: string; id: string; busy: boolean }>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: LimitStore,
    private readonly events: LimitsStateStore,
    private readonly registry: PolicyRegistry,
    private readonly opts: SharedSeedOptions & { now: () => number; log: (msg: string) => void },
  ) {}

  /**
   * Whether a call made at `ts` counts live against budget `id` (else its seed counts it). Once this
   * replica's last pass is done (it closes the seed for every replica), every call does: not merely once
   * the clock says seeding is over, for a call from before the instant counted then would be read again
   * by a last pass still to come, here or on another replica (counted twice).
   */
  counts(ws: string, id: string, ts: number | null | undefined): boolean {
    if (!this.#from.size || ts == null) return true;
    const from = this.#from.get(inWorkspace(ws, id));
    return from === undefined || ts >= from;
  }

  /**
   * Keeps a settled call's reservation in a budget whose seed is to count it (a call made before the
   * instant): until a pass has read the store holding the call, its worst case stays reserved, so a hard
   * cap still holds its cost meanwhile. Reservations of calls admitted from a lease are the lease's: it
   * takes them back at settle (leases are granted only far from the cap).
   */
  hold(ws: string, budgetId: string, hold: Hold): void {
    const key = inWorkspace(ws, budgetId);
    const holds = this.#holds.get(key);
    if (holds) holds.list.push(hold);
    else this.#holds.set(key, { ws, list: [hold] });
  }

  /**
   * A budget has come into force here, or an edit of it (the registry says so at once): with a seed new
   * here, until its instant is known, the calls counted against it are all from before the instant, so
   * its seed counts them.
   */
  appeared(ws: string, id: string): void {
    const b = this.#budget(ws, id);
    const key = inWorkspace(ws, id);
    if (!b || this.#seeds.get(key) === seedOf(b)) return;
    this.#seeds.set(key, seedOf(b));
    this.#from.set(key, Number.POSITIVE_INFINITY);
  }

  #budget(ws: string, id: string): Budget | undefined {
    return this.registry.forWorkspace(ws).budgets.find((b) => b.id === id);
  }

  /**
   * A budget that appeared while running: fixes its instant (or learns another replica's) and seeds it.
   * With the limit store down, its instant is asked for again at each tick until it answers, the budget's
   * calls not counted live meanwhile (those made before the instant are in its seed). Counting them live
   * instead, it had no seed at all (its window's spend before it never counted), and the calls made here
   * before an instant another replica fixed counted twice (live, and in that replica's seed).
   */
  async added(ws: string, id: string): Promise<void> {
    const key = inWorkspace(ws, id);
    const b = this.#budget(ws, id);
    if (!b) return; // removed since
    const seed = seedOf(b);
    this.#seeds.set(key, seed);
    let from: number | null;
    try {
      from = await this.store.countFrom(ws, seed, this.opts.now() + this.opts.graceMs);
    } catch (e) {
      this.#from.set(key, Number.POSITIVE_INFINITY);
      this.#unfixed.set(key, { ws, id, busy: false });
      this.#startTicks();
      this.opts.log(`limits: the instant of budget ${id} not fixed, tried again: ${(e as Error).message}`);
      return;
    }
    this.#unfixed.delete(key);
    if (from === null) return;
    // A budget that comes back after its seeding ended keeps its counters: its seed is in them already
    // (read again once its seeded totals have expired, it would count twice).
    if (this.#follow(ws, id, seed, from)) await this.#pass(ws, id, seed, from, false);
    else await this.#release(key, () => true);
  }

  /**
   * At start: learns the instants of the budgets that have one, and goes on with seeds not finished. A
   * budget with none is new to the replicas, added as one added while running is (its instant proposed,
   * its window's spend seeded): a limits-file budget a deploy brought, one created through the API within
   * the grace period (another replica is adding it). Except at the first start of a replica that seeds on
   * this Redis: its budgets have been counted live by the replicas before (from before seeding), so they
   * get the instant 0, and coming back (dropped from the file and restored, deleted and created again)
   * keep their counters rather than adding their window's spend to them again.
   */
  async resume(workspaces: Iterable<string>): Promise<void> {
    for (const ws of workspaces) {
      const seededBefore = (await this.store.countFrom(ws, STARTED, null)) !== null;
      for (const b of this.registry.forWorkspace(ws).budgets) {
        const seed = seedOf(b);
        this.#seeds.set(inWorkspace(ws, b.id), seed);
        let from = await this.store.countFrom(ws, seed, null);
        if (from === null) {
          if (seededBefore || this.#recentApiBudget(ws, b.id)) {
            await this.added(ws, b.id);
            continue;
          }
          from = await this.store.countFrom(ws, seed, 0);
        }
        if (from !== null) this.#follow(ws, b.id, seed, from);
      }
      // Marked once its budgets have their instants: a replica that finds the mark finds those too.
      await this.store.countFrom(ws, STARTED, this.opts.now());
    }
  }

  #recentApiBudget(ws: string, id: string): boolean {
    const e = this.registry.get(ws, "budget", id);
    return e?.source === "api" && e.updated_at !== null && this.opts.now() - e.updated_at < this.opts.graceMs;
  }

  /** Takes back the held reservations `done` says, of budget `key`. */
  async #release(key: string, done: (h: Hold) => boolean): Promise<void> {
    const holds = this.#holds.get(key);
    if (!holds) return;
    const released = holds.list.filter(done);
    if (!released.length) return;
    holds.list = holds.list.filter((h) => !done(h));
    if (!holds.list.length) this.#holds.delete(key);
    await this.store.releaseHolds(holds.ws, released);
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * At shutdown: gives back every reservation still held here. No pass of this replica will read the
   * store for them any more; the other replicas' passes count the calls once stored. Kept, they would
   * hold the cap's room for their TTL (an hour).
   */
  async releaseAll(): Promise<void> {
    await Promise.all([...this.#holds.keys()].map((key) => this.#release(key, () => true)));
  }

  #endMs(): number {
    return this.opts.passesMs[this.opts.passesMs.length - 1] ?? 0;
  }

  /**
   * Counts the budget's calls from `from` on, and goes on with its seed's passes; false when its seeding
   * has ended (every call counts live).
   */
  #follow(ws: string, id: string, seed: string, from: number): boolean {
    const key = inWorkspace(ws, id);
    const now = this.opts.now();
    if (now >= from + this.#endMs() + TICK_MS) {
      this.#from.delete(key); // seeded already
      return false;
    }
    this.#from.set(key, from);
    const under = this.#seeding.get(key);
    if (under?.from === from && under.seed === seed) return true; // under way (the budget came back meanwhile)
    const next = this.opts.passesMs.findIndex((ms) => now < from + ms);
    this.#seeding.set(key, {
      ws,
      id,
      seed,
      from,
      next: next === -1 ? this.opts.passesMs.length - 1 : next,
      busy: false,
    });
    this.#startTicks();
    return true;
  }

  #startTicks(): void {
    this.#timer ??= setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
  }

  #tick(): void {
    for (const [key, u] of this.#unfixed) {
      if (u.busy) continue;
      if (!this.#budget(u.ws, u.id)) {
        this.#unfixed.delete(key); // removed since
        continue;
      }
      u.busy = true;
      void this.added(u.ws, u.id).finally(() => {
        u.busy = false;
      });
    }
    const now = this.opts.now();
    for (const [key, s] of this.#seeding) {
      if (s.busy || now < s.from + this.opts.passesMs[s.next]!) continue;
      s.busy = true;
      const last = s.next === this.opts.passesMs.length - 1;
      void this.#pass(s.ws, s.id, s.seed, s.from, last).then((done) => {
        s.busy = false;
        if (!done || ++s.next < this.opts.passesMs.length || this.#seeding.get(key) !== s) return;
        // Seeding has ended here: every call of the budget counts live from now on.
        this.#seeding.delete(key);
        if (this.#from.get(key) === s.from) {
          this.#from.delete(key);
          // A call settled while the last pass gave its holds back was held after it: no pass is to come.
          void this.#release(key, () => true);
        }
      });
    }
    if (!this.#seeding.size && !this.#unfixed.size) this.close();
  }

  /**
   * Raises budget `id`'s `seed` to the store's spend of its window's calls made before `from`; false if
   * it failed. The `last` pass closes the seed: a later one, here or on a replica whose clock is behind,
   * changes nothing (the calls stored since may be counted live already).
   */
  async #pass(ws: string, id: string, seed: string, from: number, last: boolean): Promise<boolean> {
    const key = inWorkspace(ws, id);
    const b = this.#budget(ws, id);
    try {
      if (!b) {
        await this.#release(key, () => true); // removed since
        return true;
      }
      if (seedOf(b) !== seed) return true; // edited to another window kind since: that seed counts them
      // Asked before the store is summed: a call stored by then is in the sum (a store only grows).
      const holds = this.#holds.get(key)?.list ?? [];
      const ids = holds.flatMap((h) => (h.eventId ? [h.eventId] : []));
      const stored = ids.length ? await this.events.storedIds(ws, ids) : new Set<string>();
      const seeds = await storedSpend(this.events, ws, b, this.opts.now(), from);
      await this.store.seedTotals(
        ws,
        seed,
        seeds.map(({ bucket, slot, spend }) => ({ bucket, slot, total: spend })),
        last,
      );
      await this.#release(key, (h) => last || h.eventId === null || stored.has(h.eventId));
      return true;
    } catch (e) {
      this.opts.log(
        `limits: seeding budget ${id} from the store failed, tried again: ${(e as Error).message}`,
      );
      return false;
    }
  }
}
