import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { takePidLock } from "./pid-lock.js";

/** Another process holds this data dir (the embedded store's file lock, or a replica's process.lock). */
export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
}

/**
 * Claims a data dir for this process when nothing else does (the embedded store's DuckDB file lock does
 * it otherwise): replicas on a shared store still keep their spool and server.json there, and two
 * processes sharing one spool would replay each other's calls. It is held by `process.lock` (pid-lock.ts):
 * a lock left by a dead process, its pid reused or not, is taken over.
 */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const lock = takePidLock(join(dataDir, "process.lock"));
  if (lock.held) return lock.release;
  if (lock.by === null) throw new DataDirLockedError(`data dir ${dataDir}: could not take its lock`);
  throw new DataDirLockedError(
    `data dir ${dataDir} is in use by another Tollgate process (pid ${lock.by}). ` +
      "Give each replica its own --data-dir / TOLLGATE_DATA_DIR.",
  );
}
