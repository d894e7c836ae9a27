import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { DuckDbStore } from "./duckdb/store.js";
import { ThreadStore } from "./duckdb/thread-store.js";
import type { Store } from "./types.js";

const THREAD_ENTRY = new URL("./duckdb/thread-entry.js", import.meta.url);

/**
 * The embedded store, on its own thread when running from the built package (the thread needs the
 * compiled entry file), else in-process (tests running the TypeScript sources). Same interface either way.
 */
export function openStore(dataDir: string, opts: { thread?: boolean } = {}): Promise<Store> {
  const thread = opts.thread ?? existsSync(fileURLToPath(THREAD_ENTRY));
  return thread ? ThreadStore.open(dataDir, THREAD_ENTRY) : DuckDbStore.open(dataDir);
}
