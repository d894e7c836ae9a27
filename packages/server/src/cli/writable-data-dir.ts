import { accessSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { CliError } from "./common.js";
import { whyCannotCreate } from "./why-cannot-create.js";

/**
 * Makes the data dir if need be and checks it can be written, or says why not and what to do (exit 1,
 * no stack): the store and the spool (calls not stored yet) live there. A read-only mount is met at its
 * first write otherwise, as a DuckDB IO error or, for a data dir to make, as "no such file or directory".
 */
export function writableDataDir(dataDir: string): void {
  try {
    makeDirs(dataDir);
    // A file of that name passes the write check: the store's own mkdir would fail on it, with a stack.
    if (!statSync(dataDir).isDirectory())
      throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
    accessSync(dataDir, constants.W_OK);
  } catch (e) {
    throw new CliError(
      `data dir ${dataDir} cannot be written: ${whyCannotCreate(e, "it")}. Tollgate keeps its store and the ` +
        "calls it could not store yet there: make it writable, or name another with --data-dir or TOLLGATE_DATA_DIR",
    );
  }
}

/** mkdir -p, a level at a time: Node's recursive mkdir calls a read-only file system ENOENT. */
function makeDirs(dir: string): void {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (parent !== dir) makeDirs(parent); // a root that is not there (a missing drive): its mkdir says so
  try {
    mkdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e; // made meanwhile: as good
  }
}
