import { windowSlots } from "@tollgate/core";
import { utcMidnight } from "../time.js";
import type { PolicyRegistry } from "./policies.js";

/** How far back a restart rebuilds agent runs' counters from raw calls (SpendGuard.rebuild). */
export const RUN_HISTORY_MS = 7 * 86_400_000;

/** The oldest raw call limits may still need, and what needs it. */
export interface RawFloor {
  /** Epoch ms; 0 for a lifetime budget (every call). */
  from: number;
  why: string;
}

/**
 * The oldest raw call the limits rebuild from: a restart's in-memory counters and a budget added or edited
 * are seeded from raw calls alone (the daily summary lacks the requested model, tags, key, hours and local
 * days), from the start of each budget's current window (every call for a lifetime budget), and a week
 * back for agent runs. Null when no limit needs any.
 */
export function rawFloor(registry: PolicyRegistry, now: number): RawFloor | null {
  let floor: RawFloor | null = null;
  const consider = (from: number, why: string) => {
    if (floor === null || from < floor.from) floor = { from, why };
  };
  for (const ws of registry.workspaces()) {
    const p = registry.forWorkspace(ws);
    for (const b of p.budgets)
      consider(
        windowSlots(b.window, now).start,
        `budget ${b.id} of workspace ${ws} (window ${b.spec.window})`,
      );
    if (p.agents.size) consider(now - RUN_HISTORY_MS, `the agent-run ceilings of workspace ${ws}`);
  }
  return floor;
}

/**
 * A raw purge horizon that keeps what the limits need: purged spend would count as never spent after the
 * next restart, and a cap would let it be spent again. `keptFor` says what held it back (null: nothing).
 */
export function keepForLimits(
  rawBefore: number | null,
  floor: RawFloor | null,
): { rawBefore: number | null; keptFor: string | null } {
  if (rawBefore === null || floor === null || rawBefore <= floor.from) return { rawBefore, keptFor: null };
  const midnight = utcMidnight(floor.from);
  const kept = midnight > 0 ? midnight : null;
  const what =
    kept === null ? "every raw call is kept" : `raw calls from ${new Date(kept).toISOString()} are kept`;
  return {
    rawBefore: kept,
    keptFor: `${what}: ${floor.why} counts them (limits are rebuilt from raw calls at a restart)`,
  };
}
