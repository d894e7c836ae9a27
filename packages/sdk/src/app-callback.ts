import { types } from "node:util";

/**
 * An app's own callback (a record sink, estimateCost, the exporter's onWarning), kept from breaking what it
 * is given to: what it throws, or what its promise rejects with, is warned (one warning per thousand, so a
 * callback that always throws does not flood the app's log) and `fallback` stands in for its answer. A
 * call was made, and maybe billed: the app gets its reply (or its own error) as it would without the wrapper.
 */
export function guardedCallback<A, R>(what: string, fn: (arg: A) => R, fallback: R): (arg: A) => R {
  let failures = 0;
  const warn = (e: unknown) => {
    if (failures++ % 1000 === 0)
      console.warn(`[tollgate] ${what} threw (${messageOf(e)}); ignored, ${failures} times so far`);
  };
  return (arg) => {
    try {
      const out = fn(arg);
      // Any realm's promise (a vm context's): `instanceof Promise` knows only this one's.
      if (types.isPromise(out)) out.catch(warn);
      return out;
    } catch (e) {
      warn(e);
      return fallback;
    }
  };
}

function messageOf(e: unknown): string {
  return types.isNativeError(e) ? e.message : String(e);
}
