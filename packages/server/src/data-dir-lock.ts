import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Another process holds this data dir (the embedded store's file lock, or a replica's process.lock). */
export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
}

/**
 * Claims a data dir for this process when nothing else does (the embedded store's DuckDB file lock does
 * it otherwise): replicas on a shared store still keep their spool and server.json there, and two
 * processes sharing one spool would replay each other's calls. A lock left by a dead process is taken over.
 *
 * The lock appears whole or not at all (written aside, then linked into place: a link fails when the name
 * exists), so a process starting at the same time never reads it empty and takes it for a dead one's. A
 * dead process's lock is moved aside before it is removed, and put back if what was moved is no longer it
 * (another process took it over meanwhile).
 */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, "process.lock");
  const mine = join(dataDir, `process.lock.${process.pid}.tmp`);
  writeFileSync(mine, String(process.pid));
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(mine, file);
        return () => rmSync(file, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 2) throw e;
      }
      let held: string;
      try {
        held = readFileSync(file, "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") continue; // released meanwhile
        throw e;
      }
      const pid = Number(held);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
        throw new DataDirLockedError(
          `data dir ${dataDir} is in use by another Tollgate process (pid ${pid}). ` +
            "Give each replica its own --data-dir / TOLLGATE_DATA_DIR.",
        );
      takeOver(file, held, join(dataDir, `process.lock.${process.pid}.stale`));
    }
  } finally {
    rmSync(mine, { force: true });
  }
}

/** Removes the lock `file` if it still says `stale`; a live lock moved aside meanwhile is put back. */
function takeOver(file: string, stale: string, aside: string): void {
  try {
    renameSync(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return; // another process moved it first
    throw e;
  }
  try {
    if (readFileSync(aside, "utf8") !== stale) linkSync(aside, file);
  } catch (e) {
    // EEXIST: yet another process holds the name now; the next attempt reads who.
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  } finally {
    rmSync(aside, { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
