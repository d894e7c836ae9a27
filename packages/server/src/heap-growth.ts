import { setFlagsFromString } from "node:v8";
import { wholeNumberFromEnv } from "./config.js";

/** TOLLGATE_HEAP_GROWTH_PERCENT: how far V8 lets the JS heap grow past what a full GC kept; 0 leaves V8's own policy. */
export function heapGrowthFrom(env = process.env): number {
  return wholeNumberFromEnv(env, "TOLLGATE_HEAP_GROWTH_PERCENT", {
    fallback: 100,
    max: 1000,
    zeroMeans: "V8's own policy",
  });
}

/**
 * Caps how far the JS heap may grow before the next full GC: to live size × (1 + percent/100). V8's own
 * factor goes up to 4 when collecting is cheap, and a gateway's garbage is cheap: under load its heap grew
 * to ~10× the ~25 MB it keeps, all of it resident. V8 reads the factor at each full GC, so setting it at
 * run time holds for every heap of the process (the store thread's too).
 */
export function limitHeapGrowth(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}
