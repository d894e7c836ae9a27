import { readFileSync, type Stats, unwatchFile, watchFile } from "node:fs";
import { parse as parseYaml } from "yaml";

/** A config file that cannot be read or is invalid: the user's to fix, so the CLI says why without a stack. */
export class ConfigFileError extends Error {}

/** Reads a YAML (or JSON, which is YAML) config file; a failure names the file and what it was for. */
export function readYamlFile(path: string, what: string): unknown {
  try {
    return parseYaml(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigFileError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

/** Calls `reload` when the file changes or on SIGHUP; returns the function that stops watching. */
export function watchConfigFile(path: string, reload: () => void): () => void {
  // watchFile also fires when the file is only read (atime): reload on a new mtime or size only.
  const onChange = (curr: Stats, prev: Stats) => {
    if (curr.mtimeMs !== prev.mtimeMs || curr.size !== prev.size) reload();
  };
  watchFile(path, { interval: 1000 }, onChange);
  process.on("SIGHUP", reload);
  return () => {
    unwatchFile(path, onChange);
    process.off("SIGHUP", reload);
  };
}
