import { AsyncLocalStorage } from "node:async_hooks";

/**
 * Tollgate's own AsyncLocalStorages (scope and span, agent run and its frames): what traced() puts back
 * around each step of what its fn returned that is read later, in whoever's context reads it. Only these:
 * `AsyncLocalStorage.snapshot()` would put back every store, the app's own too (a logger's request id,
 * OpenTelemetry's context), and a generator made in one request and read in another would see the first's.
 */
const own: AsyncLocalStorage<unknown>[] = [];

/** An AsyncLocalStorage of Tollgate's own (module-level: they are never let go). */
export function ownStorage<T>(): AsyncLocalStorage<T> {
  const storage = new AsyncLocalStorage<T>();
  own.push(storage as AsyncLocalStorage<unknown>);
  return storage;
}

/** Runs what it is given in Tollgate's context as it is here, the app's own stores left as the caller's. */
export function ownContextHere(): <R>(run: () => R) => R {
  const values = own.map((storage) => storage.getStore());
  return <R>(run: () => R): R =>
    own.reduceRight<() => R>((inner, storage, i) => () => storage.run(values[i], inner), run)();
}
