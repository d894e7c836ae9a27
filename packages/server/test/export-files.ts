// What the tests of an export's output files share: an export written and completed in this process, and the
// files it left.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { CliError } from "../src/cli/common.js";
import { outputFile } from "../src/cli/output-file.js";

/** A CSV export to `out` with its metadata, written whole and not yet renamed into place. */
export function writtenExport(out: string) {
  const output = outputFile(out, true);
  writeFileSync(output.partial, "this export\n");
  writeFileSync(output.meta!.partial, "this export's metadata\n");
  return output;
}

/** "completed", or what `complete()` threw as the user reads it (the message and exit code); its files discarded. */
export function completeOutcome(output: ReturnType<typeof outputFile>): unknown {
  try {
    output.complete();
    return "completed";
  } catch (e) {
    return e instanceof CliError ? [e.message, e.exitCode] : e;
  } finally {
    output.discard();
  }
}

/** A CSV export to `out` with its metadata, written whole and completed: see completeOutcome. */
export const completedExport = (out: string): unknown => completeOutcome(writtenExport(out));

/** The files of `out`'s directory that are `out`'s (its metadata, partial files, a metadata moved aside). */
export const filesOf = (out: string) =>
  readdirSync(join(out, ".."))
    .filter((f) => f.startsWith(basename(out)))
    .sort();

/** What a CSV export's metadata says of its data file `file` if it describes it as the file is now. */
export function dataFileCheck(file: string) {
  const data = readFileSync(file);
  return { data_bytes: data.length, data_sha256: createHash("sha256").update(data).digest("hex") };
}
