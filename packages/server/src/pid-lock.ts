import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";

/** What taking a lock came to: held (and whose dead process's lock was taken over), or refused. */
export type PidLock =
  | {
      held: true;
      release: () => void;
      /** The lock of a process no longer running that was removed to take this one: its pid, if it said one. */
      tookOver: { pid: number | null } | null;
    }
  /** `by`: the live process holding it; null when it kept changing hands and was never free to take. */
  | { held: false; by: number | null };

/**
 * Takes the lock `file` for this process when no live process holds it; a lock left by a dead process is
 * taken over.
 *
 * The lock appears whole or not at all (written aside, then linked into place: a link fails when the name
 * exists), so a process starting at the same time never reads it empty and takes it for a dead one's. A
 * dead process's lock is removed only by the process that holds `<file>.takeover` (claimed the same way),
 * and only while it still says that dead process: no other process moves or removes a lock meanwhile, so
 * a live one is never lost. On a filesystem without hard links (FAT, exFAT, some SMB shares) each is
 * created exclusively instead, and an empty one (being written) is given a moment before it counts as dead.
 *
 * A lock says `<pid> <start>`: the holder's pid and, on Linux, when that process started. After a crash the
 * pid may be reused by an unrelated process (in a container restart, often); one that started at another
 * time is not the holder. A lock without a start (another platform, an older Tollgate) goes by the pid.
 */
export function takePidLock(file: string): PidLock {
  const mine = `${file}.${process.pid}.tmp`;
  const takeover = `${file}.takeover`;
  let tookOver: { pid: number | null } | null = null;
  try {
    // In the try: a full disk creates the file and refuses its content, and it must not stay behind.
    writeFileSync(mine, lockContent(process.pid));
    for (let attempt = 0; ; attempt++) {
      if (claim(mine, file)) return { held: true, release: () => rmSync(file, { force: true }), tookOver };
      if (attempt >= MAX_ATTEMPTS) return { held: false, by: null };
      const held = readLock(file);
      if (held === null) continue; // released meanwhile
      if (held === "" && attempt < EMPTY_WAITS) {
        pause(); // being written (a filesystem without links): its pid comes in a moment
        continue;
      }
      const pid = heldBy(held);
      if (pid !== null) return { held: false, by: pid };
      if (removeStale(file, held, mine, takeover)) tookOver = { pid: pidOf(held) };
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
 * a dead process is removed for the next attempt; one held by a live process is waited for. Whether this
 * process removed it.
 */
function removeStale(file: string, stale: string, mine: string, takeover: string): boolean {
  if (!claim(mine, takeover)) {
    const by = readLock(takeover);
    if (by === null) return false;
    if (by === "" || heldBy(by) !== null) pause();
    else rmSync(takeover, { force: true });
    return false;
  }
  try {
    if (readLock(file) !== stale) return false;
    rmSync(file, { force: true });
    return true;
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
/** Blocks 10 ms: a lock is taken once, before the work it guards starts. */
function pause(): void {
  Atomics.wait(sleeper, 0, 0, 10);
}

/** What a lock of this process says: its pid, and its start where the platform tells it. */
function lockContent(pid: number): string {
  const start = startOf(pid);
  return start === null ? String(pid) : `${pid} ${start}`;
}

/** The pid a lock's content names; null when it names none. */
function pidOf(content: string): number | null {
  const pid = Number(content.split(" ")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** The pid of the live process, other than this one, that a lock's content names; null when none does. */
function heldBy(content: string): number | null {
  const pid = pidOf(content);
  if (pid === null || pid === process.pid || !alive(pid)) return null;
  const start = content.split(" ")[1];
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
