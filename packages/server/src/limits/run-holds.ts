import type { RunHold } from "@tollgate/core";

/**
 * Where a run's calls in flight hold cost (nano-USD) and tokens until they settle: reservations kept as a
 * budget bucket keeps its own (by call id, with an expiry), so both limit stores reuse that bookkeeping.
 * Their own prefix ("hr:<run id>:"): no run id, however crafted, makes a run key ("r:…") that is one of them.
 */
export const runHoldKeys = (runKey: string) => ({ cost: `h${runKey}:cost`, tokens: `h${runKey}:tokens` });

/** A call's holds on its run, as (hold key, amount) pairs: its cost in nano-USD, its tokens. */
export const holdsOf = (runKey: string, hold: RunHold): [key: string, amount: bigint][] => {
  const keys = runHoldKeys(runKey);
  return [
    [keys.cost, hold.cost_nanousd],
    [keys.tokens, BigInt(hold.total_tokens)],
  ];
};
