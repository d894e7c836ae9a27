import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
 * dead process's lock is removed only by the process that holds `process.lock.takeover` (claimed the same
 * way), and only while it still says that dead process: no other process moves or removes a lock meanwhile,
 * so a live one is never lost. On a filesystem without hard links (FAT, exFAT, some SMB shares) each is
 * created exclusively instead, and an empty one (being written) is given a moment before it counts as dead.
 *
 * A lock says `<pid> <start>`: the holder's pid and, on Linux, when that process started. After a crash the
 * pid may be reused by an unrelated process (in a container restart, often); one that started at another
 * time is not the holder. A lock without a start (another platform, an older Tollgate) goes by the pid.
 */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, "process.lock");
  const mine = join(dataDir, `process.lock.${process.pid}.tmp`);
  const takeover = join(dataDir, "process.lock.takeover");
  writeFileSync(mine, lockContent(process.pid));
  try {
    for (let attempt = 0; ; attempt++) {
      if (claim(mine, file)) return () => rmSync(file, { force: true });
      if (attempt >= MAX_ATTEMPTS)
        throw new DataDirLockedError(`data dir ${dataDir}: could not take its lock`);
      const held = readLock(file);
      if (held === null) continue; // released meanwhile
      if (held === "" && attempt < EMPTY_WAITS) {
        pause(); // being written (a filesystem without links): its pid comes in a moment
        continue;
      }
      const pid = heldBy(held);
      if (pid !== null)
        throw new DataDirLockedError(
          `data dir ${dataDir} is in use by another Tollgate process (pid ${pid}). ` +
            "Give each replica its own --data-dir / TOLLGATE_DATA_DIR.",
        );
      removeStale(file, held, mine, takeover);
    }
  } finally {
    rmSync(mine, { force: true });
  }
}

/** Tries and 10 ms pauses before giving up on a lock that keeps changing hands. */
const MAX_ATTEMPTS = 200;
/** How many tries an empty lock (being written) is waited for before it counts as a dead process's. */
const EMPTY_WAITS = 20;

/** Creates `file` as a copy of `mine` if nothing has that name yet; false if something has. */
function claim(mine: string, file: string): boolean {
  try {
    linkSync(mine, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (!code || !NO_LINKS.has(code)) throw e;
  }
  try {
    writeFileSync(file, readFileSync(mine, "utf8"), { flag: "wx" });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
}

/** What link() answers on a filesystem without hard links (FAT and exFAT, SMB without Unix extensions). */
const NO_LINKS: ReadonlySet<string> = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/**
 * Removes the lock `file` while it still says `stale`, holding `takeover` meanwhile: of the processes that
 * found it stale, one removes it, and none can remove the lock another then takes. A takeover claim left by
 * a dead process is removed for the next attempt; one held by a live process is waited for.
 */
function removeStale(file: string, stale: string, mine: string, takeover: string): void {
  if (!claim(mine, takeover)) {
    const by = readLock(takeover);
    if (by === null) return;
    if (by === "" || heldBy(by) !== null) pause();
    else rmSync(takeover, { force: true });
    return;
  }
  try {
    if (readLock(file) === stale) rmSync(file, { force: true });
  } finally {
    rmSync(takeover, { force: true });
  }
}

/** The lock's content; null when there is none. */
function readLock(file: string): string | null {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Blocks 10 ms: the lock is taken once, at start, before anything else runs. */
function pause(): void {
  Atomics.wait(sleeper, 0, 0, 10);
}

/** What a lock of this process says: its pid, and its start where the platform tells it. */
function lockContent(pid: number): string {
  const start = startOf(pid);
  return start === null ? String(pid) : `${pid} ${start}`;
}

/** The pid of the live process, other than this one, that a lock's content names; null when none does. */
function heldBy(content: string): number | null {
  const [pidText, start] = content.split(" ");
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !alive(pid)) return null;
  if (start !== undefined) {
    const now = startOf(pid);
    if (now !== null && now !== start) return null; // the pid was reused by a process started since
  }
  return pid;
}

/**
 * When a process started, in clock ticks since boot (`/proc/PID/stat`'s 22nd field); null where there is no
 * /proc or the process is gone. Its name (field 2) may hold spaces and parentheses, so fields are counted
 * after its last `)`.
 */
function startOf(pid: number): string | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
