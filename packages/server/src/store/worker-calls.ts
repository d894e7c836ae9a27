import { type MessagePort, parentPort, type ResourceLimits, Worker } from "node:worker_threads";

/** A thrown error as it crosses threads: its class does not survive the trip, its name does. */
export interface WireError {
  name: string;
  message: string;
}

/** The error as thrown on the other side, as far as it can be rebuilt: message and name. */
export function reviveError(e: WireError): Error {
  const error = new Error(e.message);
  error.name = e.name;
  return error;
}

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: WireError;
}

/** What a store thread sends first: ready (with whatever the caller needs to know), or why it could not open. */
type Ready = { ready: true } & Record<string, unknown>;
type Failed = { ready: false; error: WireError };

/**
 * Calls into an object on a worker thread: each call is a message, answered by id. Once the thread is
 * gone every pending and later call fails at once instead of waiting forever.
 */
export class WorkerCalls {
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #next = 0;
  #dead: Error | null = null;

  private constructor(
    readonly worker: Worker,
    revive: (e: WireError) => Error,
  ) {
    worker.on("message", (m: Reply) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(revive(m.error!));
    });
    worker.on("error", (e) => this.#fail(e));
    worker.on("exit", (code) => this.#fail(new Error(`store thread exited (code ${code})`)));
  }

  /**
   * Starts `script` and waits for its ready message (whose other fields are returned as `info`);
   * `opening` names what the thread opens, for the error should it exit first.
   */
  static start(
    script: URL,
    workerData: unknown,
    revive: (e: WireError) => Error,
    opts: { resourceLimits?: ResourceLimits; opening?: string } = {},
  ): Promise<{ calls: WorkerCalls; info: Record<string, unknown> }> {
    const worker = new Worker(script, { workerData, resourceLimits: opts.resourceLimits });
    return new Promise((resolve, reject) => {
      worker.once("message", (m: Ready | Failed) => {
        if (m.ready) resolve({ calls: new WorkerCalls(worker, revive), info: m });
        else {
          void worker.terminate();
          reject(revive(m.error));
        }
      });
      worker.once("error", reject);
      worker.once("exit", (code) =>
        reject(new Error(`store thread exited (code ${code}) while opening ${opts.opening ?? "its store"}`)),
      );
    });
  }

  /** Null while the thread runs; the reason once it is gone. */
  get dead(): Error | null {
    return this.#dead;
  }

  call<T>(method: string, args: unknown[], transfer: ArrayBuffer[] = []): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      if (this.#dead) return reject(this.#dead);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, method, args }, transfer);
    });
  }

  /** Calls `close` on the other side, then ends the thread. */
  async close(): Promise<void> {
    await this.call("close", []);
    await this.worker.terminate();
  }

  #fail(e: Error): void {
    this.#dead ??= e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }
}

/**
 * The worker's side: opens the object, says it is ready (with `info` of it), then runs each call's method
 * on it and answers; `close` is answered, then the port is closed.
 */
export async function serveCalls<T extends object>(
  open: () => Promise<T>,
  info: (target: T) => Record<string, unknown> = () => ({}),
): Promise<void> {
  const port = parentPort as MessagePort;
  const wire = (e: unknown): WireError => ({ name: (e as Error).name, message: (e as Error).message });
  let target: T;
  try {
    target = await open();
  } catch (e) {
    port.postMessage({ ready: false, error: wire(e) });
    return;
  }
  port.on("message", async (msg: { id: number; method: string; args: unknown[] }) => {
    try {
      const fn = (target as Record<string, (...a: unknown[]) => Promise<unknown>>)[msg.method]!;
      const value = await fn.apply(target, msg.args);
      port.postMessage({ id: msg.id, ok: true, value });
      if (msg.method === "close") port.close();
    } catch (e) {
      port.postMessage({ id: msg.id, ok: false, error: wire(e) });
    }
  });
  port.postMessage({ ready: true, ...info(target) });
}
