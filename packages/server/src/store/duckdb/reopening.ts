/** What DuckDB answers once it has invalidated a database, and the fatal error that invalidates it. */
const INVALIDATED = /database has been invalidated|FATAL Error/;

/** How soon a reopen that failed (the disk still full, say) is tried again, at the next call. */
const RETRY_MS = 1_000;

/**
 * A store that opens itself again when DuckDB invalidates its database. DuckDB does that after a fatal
 * error, such as a checkpoint that could not write (a full disk), and then refuses every later call
 * until the database is opened anew, even once the disk has room. Here, the call that meets the error
 * still fails (its caller keeps what it was writing: the recorder spools it), and later calls wait for
 * the store opened again from its file (WAL replayed: nothing committed is lost). A reopen that fails is
 * tried again at a later call. Every method of the store must return a promise.
 */
export async function reopeningStore<S extends { close(): Promise<void> }>(
  open: () => Promise<S>,
  log: (msg: string) => void = (m) => console.error(m),
): Promise<S> {
  let current = await open();
  /** The reopen under way; calls wait for it. */
  let reopening: Promise<void> | null = null;
  /** Set while the store is known broken: the reason, and when a reopen may be tried again. */
  let broken: { error: Error; retryAt: number } | null = null;
  let closed = false;

  const reopen = (why: Error): Promise<void> => {
    reopening ??= (async () => {
      log(`store: DuckDB invalidated the database (${firstLine(why)}); opening it again`);
      await current.close().catch(() => {}); // an invalidated database still closes; a failure changes nothing
      try {
        current = await open();
        broken = null;
        log("store: database opened again");
      } catch (e) {
        broken = { error: e as Error, retryAt: Date.now() + RETRY_MS };
        log(
          `store: opening the database again failed, tried again at a later call: ${firstLine(e as Error)}`,
        );
      }
    })().finally(() => {
      reopening = null;
    });
    return reopening;
  };

  const call = async (method: string | symbol, args: unknown[]): Promise<unknown> => {
    if (reopening) await reopening;
    if (broken && !closed) {
      if (Date.now() < broken.retryAt) throw broken.error;
      await reopen(broken.error);
      if (broken) throw broken.error;
    }
    const store = current;
    const target = store as unknown as Record<string | symbol, (...a: unknown[]) => Promise<unknown>>;
    try {
      return await (replaced.get(method) ?? target[method]!).apply(store, args);
    } catch (e) {
      // A call still on a store opened again since (it failed late) says nothing of the one open now.
      if (!closed && store === current && INVALIDATED.test((e as Error)?.message ?? ""))
        void reopen(e as Error);
      throw e;
    }
  };

  /** Each method's stand-in, one per name (so that reading a method twice gives the same function). */
  const methods = new Map<string | symbol, (...args: unknown[]) => Promise<unknown>>();
  /** Methods set on the store from outside (wrapped or stubbed), whichever store is open. */
  const replaced = new Map<string | symbol, (...args: unknown[]) => Promise<unknown>>();
  const methodOf = (prop: string | symbol) => {
    let fn = methods.get(prop);
    if (!fn) {
      fn = (...args: unknown[]) => call(prop, args);
      methods.set(prop, fn);
    }
    return fn;
  };

  return new Proxy({} as S, {
    get(_target, prop) {
      if (prop === "close")
        return async () => {
          closed = true;
          if (reopening) await reopening;
          if (!broken) await current.close(); // a broken one was closed when it broke
        };
      const value = (current as unknown as Record<string | symbol, unknown>)[prop];
      return typeof value === "function" ? methodOf(prop) : value;
    },
    set(_target, prop, value) {
      // Setting back the stand-in read before undoes a replacement.
      if (typeof value !== "function") return false;
      if (value === methods.get(prop)) replaced.delete(prop);
      else replaced.set(prop, value);
      return true;
    },
  });
}

/** An error's first line; for DuckDB's "invalidated" answer, the fatal error that invalidated the database. */
function firstLine(e: Error): string {
  const text = String(e?.message ?? e);
  const original = /Original error: "(.*)/.exec(text)?.[1];
  return (original ?? text).split("\n")[0]!.replace(/"$/, "");
}
