import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Another process holds this data dir (the embedded store's file lock, or a replica's process.lock). */
export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
}

/**
 * Claims a data dir for this process when nothing else does (the embedded store's DuckDB file lock does
 * it otherwise): replicas on a shared store still keep their spool and server.json there, and two
 * processes sharing one spool would replay each other's calls. A lock left by a dead process is taken over.
 */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, "process.lock");
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: "wx" });
      return () => rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw e;
      const pid = Number(readFileSync(file, "utf8"));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
        throw new DataDirLockedError(
          `data dir ${dataDir} is in use by another Tollgate process (pid ${pid}). ` +
            "Give each replica its own --data-dir / TOLLGATE_DATA_DIR.",
        );
      rmSync(file, { force: true });
    }
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
