import { workerData } from "node:worker_threads";
import { serveCalls } from "../worker-calls.js";
import { reopeningStore } from "./reopening.js";
import { DuckDbStore } from "./store.js";

// Runs a DuckDbStore on its own thread: DuckDB's Appender and commits are synchronous native work, and
// here they never block the event loop that proxies and answers requests.
await serveCalls(
  () => reopeningStore(() => DuckDbStore.open((workerData as { dataDir: string }).dataDir)),
  (store) => ({ writeConcurrency: store.writeConcurrency }),
);
