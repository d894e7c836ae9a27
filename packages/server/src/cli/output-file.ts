import {
  closeSync,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { dirname, resolve } from "node:path";
import { type PidLock, takePidLock } from "../pid-lock.js";
import { CliError } from "./common.js";
import { cleanUpOnInterrupt } from "./interrupt-cleanup.js";
import { whyCannotCreate } from "./why-cannot-create.js";
import { failure, writeFailure } from "./write-failure.js";

/** An export's file (and its metadata's), each written as `<file>.partial` until the export is complete. */
export interface OutputFile {
  partial: string;
  /** `<out>.meta.json` (a CSV's metadata): written as the file is, so a failed write keeps the previous one. */
  meta: { file: string; partial: string } | null;
  complete(): void;
  discard(): void;
}

/**
 * Says why `path` cannot be written as a usage error (an unreadable `ingest` file is one), before a long
 * export rather than after it: a directory, or no regular file.
 */
function refuseUnwritable(path: string): void {
  const there = entryAt(path);
  if (there === "directory") throw new CliError(`cannot write ${path}: it is a directory`, 2);
  // Renamed over, /dev/null (as root) would become a regular file, and a pipe would never be read from.
  if (there === "special")
    throw new CliError(
      `cannot write ${path}: it is not a regular file (a device, pipe or socket); an export is written to a file and renamed into place when complete: give a file's path`,
      2,
    );
}

/**
 * Takes `<path>.lock` for this export: two exports writing one `<path>.partial` would mix their rows, or
 * rename the other's half into place. Refused (a usage error) while a running export holds it; one left by
 * an export killed before it finished (kill -9, a crash) is taken over, its partial files replaced and the
 * user told, rather than left for the user to remove: its process is known gone (its pid, and when that
 * process started, against a pid reused since), and a scheduled export would otherwise fail every run after
 * one was killed until someone removed it.
 */
function lockOutput(path: string): { release: () => void; tookOver: boolean } {
  const lockFile = `${path}.lock`;
  let lock: PidLock;
  try {
    lock = takePidLock(lockFile);
  } catch (e) {
    throw new CliError(`cannot write ${path}: ${whyCannotCreate(e, "its directory")}`, 2);
  }
  if (!lock.held)
    throw new CliError(
      lock.by === null
        ? `cannot write ${path}: other exports to it keep starting and ending (${lockFile}); try again`
        : `cannot write ${path}: another export (pid ${lock.by}) is writing it (${lockFile}); wait for it to end, or write elsewhere`,
      2,
    );
  if (lock.tookOver)
    console.error(
      `note: an export to ${path}${lock.tookOver.pid ? ` (pid ${lock.tookOver.pid})` : ""} ended before it finished (killed, or its machine stopped); this export replaces the partial files it left`,
    );
  return { release: lock.release, tookOver: lock.tookOver !== null };
}

/** Creates `<path>.partial` (a path refuseUnwritable let by), or says why it cannot be (a usage error). */
function createPartial(path: string): string {
  const partial = `${path}.partial`;
  try {
    closeSync(openSync(partial, "w"));
  } catch (e) {
    throw new CliError(`cannot write ${path}: ${whyCannotCreate(e, "its directory")}`, 2);
  }
  return partial;
}

/**
 * The file a path names: a symbolic link's target (followed to its end, there or not yet), so an export
 * replaces what the link points at, as a shell's `>` writes through it; renamed over, the link itself
 * would become a regular file.
 */
function linkTarget(path: string): string {
  let at = path;
  for (let hops = 0; hops < 40; hops++) {
    try {
      if (!lstatSync(at).isSymbolicLink()) return at;
    } catch {
      return at; // not there (yet): the file to create
    }
    // A relative target is of the directory the link really is in: reached through a linked directory,
    // the path as given names another.
    at = resolve(realpathSync(dirname(at)), readlinkSync(at));
  }
  throw new CliError(`cannot write ${path}: too many levels of symbolic links`, 2);
}

/**
 * What is at `path` (followed through links): a directory, a regular file, or something else (/dev/null, a
 * FIFO, a socket); null when nothing is, or it cannot be looked at (a file in its path: said by the open).
 */
function entryAt(path: string): "directory" | "file" | "special" | null {
  try {
    const st = statSync(path);
    return st.isDirectory() ? "directory" : st.isFile() ? "file" : "special";
  } catch {
    return null;
  }
}

const isDirectory = (path: string) => entryAt(path) === "directory";

/** A directory made in the place of an export's file while it ran (one there before is said at the start). */
const DIRECTORY_IN_ITS_PLACE = {
  why: "a directory is in its place",
  fix: "move that directory away, or write elsewhere",
};

/** A rename of `file`'s (into place, or aside) that failed, said as which file, why and what to do (exit 1). */
function renameFailure(file: string, e: unknown): unknown {
  const said = writeFailure(file, e); // a full disk, a file system turned read-only, …
  return said !== e
    ? said
    : failure(file, { why: whyCannotCreate(e, "its directory"), fix: "write elsewhere" });
}

/** Renames `partial` to `file`, said as renameFailure says it if it cannot be, not as Node's raw error. */
function renameTo(file: string, partial: string): void {
  try {
    renameSync(partial, file);
  } catch (e) {
    throw renameFailure(file, e);
  }
}

/** Where an export's previous metadata is moved until its data file is in place. */
const asideOf = (metaFile: string) => `${metaFile}.previous`;

/** Moves `file` to `aside`: whether it was there to move. */
function moveAside(file: string, aside: string): boolean {
  try {
    renameSync(file, aside);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw renameFailure(file, e);
  }
}

/**
 * Renames an export's complete files into place: its data file, the one a reader takes for the export, then
 * its metadata (`meta.partial`), if it has any. The previous metadata (`meta.file`) is moved aside
 * (`<file>.previous`) before the data file is renamed and removed after: the pair found is always one
 * export's, or the data file alone for a moment (killed then, its metadata stays as `<file>.partial`), never
 * new metadata beside the previous data or the reverse. A format without metadata (json, parquet) replacing
 * a CSV export removes the CSV's, which describes the file replaced. Moved aside, not removed, so it is put
 * back if the data file cannot be renamed (an immutable file, another user's in a sticky directory).
 */
function renameIntoPlace(
  data: [partial: string, file: string],
  meta: { file: string; partial: string | null },
) {
  // Without metadata of its own, an export has none to replace but a CSV's file (not whatever else is there).
  if (meta.partial === null && entryAt(meta.file) !== "file") return renameTo(data[1], data[0]);
  // Every place looked at before any file is moved: a directory in the data file's place is said at once,
  // and one where the previous metadata goes aside as itself, not as the rename's EISDIR.
  for (const file of [meta.file, asideOf(meta.file), data[1]])
    if (isDirectory(file)) throw failure(file, DIRECTORY_IN_ITS_PLACE);
  const { partial: metaPartial, file: metaFile } = meta;
  const aside = asideOf(metaFile);
  const hadPrevious = moveAside(metaFile, aside);
  try {
    renameTo(data[1], data[0]);
  } catch (e) {
    try {
      if (hadPrevious) renameSync(aside, metaFile);
    } catch (undone) {
      throw new CliError(
        `${(e as Error).message}; but ${metaFile} could not be put back as it was (${whyCannotCreate(undone, "its directory")}): rename ${aside} to ${metaFile}`,
        1,
      );
    }
    throw e;
  }
  // Moved aside now, or by an export killed before its data file was in place: either way it describes a
  // data file now replaced.
  rmSync(aside, { force: true });
  if (metaPartial === null) return;
  try {
    renameSync(metaPartial, metaFile);
  } catch (e) {
    // Rarely refused here, after the data file's rename was made (a directory made in its place since it
    // was looked at, the file system turned read-only): the data file is this export's, with no metadata.
    throw new CliError(
      `cannot write ${metaFile}: ${whyCannotCreate(e, "its directory")}; ${data[1]} is this export's, complete, without its metadata: export again, or write elsewhere`,
      1,
    );
  }
}

/**
 * An export's file, written as `<out>.partial` and renamed to `out` when complete: an export that fails
 * midway (its server gone, a full disk) or is interrupted (Ctrl-C) leaves no file that reads as whole, and
 * keeps the one it would have replaced. `withMeta`: its `<out>.meta.json` too, written and kept alike (a
 * full disk while writing it would otherwise leave the previous export's data without its metadata).
 * Created before the export asks anything of the server, so a path that cannot be written is said at once;
 * held by `<out>.lock` (lockOutput) until complete or discarded, so a second export to it is refused at once.
 */
export function outputFile(given: string, withMeta = false): OutputFile {
  // A link to a device, pipe or socket is refused as one, by the name given: the link of a pipe's
  // descriptor (/dev/stdout → /proc/self/fd/1 → "pipe:[…]") names no file to follow to.
  const out = entryAt(given) === "special" ? given : linkTarget(given);
  refuseUnwritable(out);
  const lock = lockOutput(out);
  const unlock = lock.release;
  const partial = `${out}.partial`; // this export's: a partial file there now is a dead export's, if any
  // A CSV's metadata file: written by a CSV export, replaced (removed) by any other.
  const metaFile = linkTarget(`${given}.meta.json`);
  let meta: OutputFile["meta"] = null;
  try {
    createPartial(out);
    if (withMeta) {
      refuseUnwritable(metaFile);
      meta = { file: metaFile, partial: createPartial(metaFile) };
    } else if (lock.tookOver) rmSync(`${metaFile}.partial`, { force: true }); // a killed CSV export's
  } catch (e) {
    rmSync(partial, { force: true });
    unlock();
    throw e;
  }
  const remove = () => {
    rmSync(partial, { force: true });
    if (meta) rmSync(meta.partial, { force: true });
    unlock(); // last: another export may take the path only once this one's partial files are gone
  };
  const cancelCleanup = cleanUpOnInterrupt(remove);
  return {
    partial,
    meta,
    complete: () => renameIntoPlace([partial, out], { file: metaFile, partial: meta?.partial ?? null }),
    discard: () => {
      cancelCleanup();
      remove();
    },
  };
}
