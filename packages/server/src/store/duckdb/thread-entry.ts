import { parentPort, workerData } from "node:worker_threads";
import { DuckDbStore } from "./store.js";

/**
 * Runs a DuckDbStore on its own thread: DuckDB's Appender and commits are synchronous native work,
 * and here they never block the event loop that proxies and answers requests.
 */
const port = parentPort!;
try {
  const store = await DuckDbStore.open((workerData as { dataDir: string }).dataDir);
  port.on("message", async (msg: { id: number; method: string; args: unknown[] }) => {
    try {
      const fn = (store as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[msg.method]!;
      const value = await fn.apply(store, msg.args);
      port.postMessage({ id: msg.id, ok: true, value });
      if (msg.method === "close") port.close();
    } catch (e) {
      port.postMessage({
        id: msg.id,
        ok: false,
        error: { name: (e as Error).name, message: (e as Error).message },
      });
    }
  });
  port.postMessage({ ready: true, writeConcurrency: store.writeConcurrency });
} catch (e) {
  port.postMessage({ ready: false, error: { name: (e as Error).name, message: (e as Error).message } });
}
