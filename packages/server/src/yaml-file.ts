import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { parse as parseYaml } from "yaml";

/** Reads a YAML (or JSON, which is YAML) config file; a failure names the file and what it was for. */
export function readYamlFile(path: string, what: string): unknown {
  try {
    return parseYaml(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

/** Calls `reload` when the file changes or on SIGHUP; returns the function that stops watching. */
export function watchConfigFile(path: string, reload: () => void): () => void {
  watchFile(path, { interval: 1000 }, reload);
  process.on("SIGHUP", reload);
  return () => {
    unwatchFile(path, reload);
    process.off("SIGHUP", reload);
  };
}
