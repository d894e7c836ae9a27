import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CliError } from "./common.js";
import { whyCannotCreate } from "./why-cannot-create.js";

/**
 * A new directory in the system's temp dir (TMPDIR, else /tmp) for `what` (the files it holds, as the user
 * reads them). One that cannot be made there is said as where, why and what to do, before any work and as a
 * usage error (exit 2) as an output path that cannot be written is: not as Node's raw error and its stack.
 */
export function makeTempDir(prefix: string, what: string): string {
  const parent = tmpdir();
  try {
    return mkdtempSync(join(parent, prefix));
  } catch (e) {
    throw new CliError(
      `cannot write ${what} in the temporary directory ${parent}: ${whyCannotCreate(e, "it")}; set TMPDIR to a directory that can be written`,
      2,
    );
  }
}
