// The benchmarks' command line: parseArgs with --help (the script's opening comment, which says what it
// measures and how to run it) and, for an option it does not take, that comment and exit 2, not a stack trace.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** parseArgs({ options }) for the script at `scriptUrl` (its import.meta.url). */
export function benchArgs(scriptUrl, options) {
  const usage = () => {
    const lines = readFileSync(fileURLToPath(scriptUrl), "utf8").split("\n");
    return lines
      .filter((l, i) => i > 0 || !l.startsWith("#!"))
      .filter((_, i, all) => all.slice(0, i + 1).every((l) => l.startsWith("//")))
      .map((l) => l.replace(/^\/\/ ?/, ""))
      .join("\n");
  };
  let parsed;
  try {
    parsed = parseArgs({ options: { ...options, help: { type: "boolean", short: "h" } } });
  } catch (e) {
    console.error(`${e.message}\n\n${usage()}`);
    process.exit(2);
  }
  if (parsed.values.help) {
    console.log(usage());
    process.exit(0);
  }
  delete parsed.values.help;
  return parsed;
}
