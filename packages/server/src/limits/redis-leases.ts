import type { AdmitRequest, BucketCharge } from "./types.js";
import { inWorkspace } from "./workspace-key.js";

/** A lease is this many times the worst case of the call that asked for it… */
export const LEASE_CALLS = 64n;
/** …and is granted only while its bucket keeps this many leases' worth of room for everyone else. */
export const LEASE_ROOM = 4;
/** New calls use a lease for this long; then what it has left goes back once its calls have settled. */
export const LEASE_USE_MS = 2_000;

/** An allowance of one bucket, reserved in Redis, from which this process admits calls without a round trip. */
export interface Lease {
  id: string;
  workspace: string;
  key: string;
  slot: string;
  /** The bucket's limit when Redis granted it: a lease is room under that limit, not under a lower one. */
  limit: bigint;
  /** Allowance left in Redis (shrinks by each settled call's actual cost). */
  granted: bigint;
  /** Worst cases of this process's calls in flight under the lease. */
  held: bigint;
  usableUntil: number;
  retired: boolean;
}

export interface LeaseUse {
  lease: Lease;
  amount: bigint;
}

/** Only plain hard caps are leased: throttles and alert-only budgets need every call counted in Redis. */
export function leasable(b: BucketCharge): boolean {
  return b.enforce && b.throttleRpm === null && b.amount > 0n;
}

/**
 * This process's leases. Admitting from them is synchronous (one event loop: atomic); the sum of what they
 * admit never exceeds what Redis reserved for them, so caps hold across replicas. `release` is called
 * with leases whose remaining allowance should go back to Redis.
 */
export class LeaseBook {
  readonly #live = new Map<string, Lease>();
  /** Calls admitted from leases, by reservation id. */
  readonly #uses = new Map<string, LeaseUse[]>();

  constructor(private readonly release: (leases: Lease[]) => void) {}

  /** Admits a hard-cap-only call when every bucket has a live lease with room; false: ask Redis. */
  admit(req: AdmitRequest): boolean {
    if (req.run || req.rates.length || !req.buckets.length) return false;
    const uses: LeaseUse[] = [];
    for (const b of req.buckets) {
      const lease = this.#live.get(inWorkspace(req.workspace, b.key));
      // The budget's limit was edited since the lease was granted: a lower one may leave no room for what
      // the lease still allows. It goes back (once its calls have settled) and Redis decides.
      if (lease && lease.limit !== b.limit) {
        this.#retire(lease);
        return false;
      }
      if (
        !leasable(b) ||
        !lease ||
        req.now >= lease.usableUntil ||
        lease.slot !== b.slots[b.slots.length - 1] ||
        lease.granted - lease.held < b.amount
      )
        return false;
      uses.push({ lease, amount: b.amount });
    }
    for (const u of uses) u.lease.held += u.amount;
    this.#uses.set(req.id, uses);
    return true;
  }

  /** Takes a lease Redis granted with an admission (a bucket's previous lease is retired). */
  take(req: AdmitRequest, b: BucketCharge, id: string, amount: bigint): void {
    const k = inWorkspace(req.workspace, b.key);
    const previous = this.#live.get(k);
    if (previous) this.#retire(previous);
    this.#live.set(k, {
      id,
      workspace: req.workspace,
      key: b.key,
      slot: b.slots[b.slots.length - 1]!,
      limit: b.limit,
      granted: amount,
      held: 0n,
      usableUntil: req.now + LEASE_USE_MS,
      retired: false,
    });
  }

  /** The leases a reservation was admitted from (removed: each is settled once), or null. */
  settle(id: string): LeaseUse[] | null {
    const uses = this.#uses.get(id);
    if (!uses) return null;
    this.#uses.delete(id);
    return uses;
  }

  /** Books a settled call: its worst case is no longer held, its actual cost leaves the allowance. */
  consume(use: LeaseUse, actual: bigint): { release: boolean } {
    const { lease, amount } = use;
    lease.held -= amount;
    lease.granted -= actual < lease.granted ? actual : lease.granted;
    return { release: lease.retired && lease.held === 0n };
  }

  /** Retires leases past their use window; idle ones go back at once. */
  sweep(now: number): void {
    for (const lease of [...this.#live.values()]) if (now >= lease.usableUntil) this.#retire(lease);
  }

  /** Every live lease with no call in flight (for shutdown). */
  drain(): Lease[] {
    const idle = [...this.#live.values()].filter((l) => l.held === 0n);
    this.#live.clear();
    return idle;
  }

  #retire(lease: Lease): void {
    lease.retired = true;
    const k = inWorkspace(lease.workspace, lease.key);
    if (this.#live.get(k) === lease) this.#live.delete(k);
    if (lease.held === 0n) this.release([lease]);
  }
}
