import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";

/** Reads a YAML (or JSON, which is YAML) config file; a failure names the file and what it was for. */
export function readYamlFile(path: string, what: string): unknown {
  try {
    return parseYaml(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}
