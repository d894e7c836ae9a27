// Meta-test: every shared fixture must be exercised with exact expectations by some usage*/billing*
// test. The covered-file table is the set of fixture paths the case tables of those files name
// (string literals such as "providers/openai/x.json"); this test compares it to the directories.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { fixturePath, listFixtureFiles } from "./fixtures.js";

const TEST_DIR = path.dirname(fileURLToPath(import.meta.url));
const SELF = path.basename(fileURLToPath(import.meta.url));

/** Files that are documentation, not payloads. */
const NOT_PAYLOADS = new Set(["providers/SOURCES.md"]);

const FIXTURE_LITERAL = /["'`]((?:providers|conformance\/payloads)\/[^"'`\s]+\.[a-z]+)["'`]/g;

function coveredByTests(): Map<string, string[]> {
  const covered = new Map<string, string[]>();
  const testFiles = readdirSync(TEST_DIR).filter(
    (f) => /^(usage|billing).*\.test\.ts$/.test(f) && f !== SELF,
  );
  for (const file of testFiles) {
    const source = readFileSync(path.join(TEST_DIR, file), "utf8");
    for (const match of source.matchAll(FIXTURE_LITERAL)) {
      const rel = match[1]!;
      covered.set(rel, [...(covered.get(rel) ?? []), file]);
    }
  }
  return covered;
}

describe("fixture coverage", () => {
  const files = [...listFixtureFiles("providers"), ...listFixtureFiles("conformance/payloads")];
  const covered = coveredByTests();

  it("finds the fixture directories", () => {
    expect(files.length).toBeGreaterThan(60);
  });

  it("every fixture file is referenced by a test case", () => {
    const missing = files.filter((f) => !NOT_PAYLOADS.has(f) && !covered.has(f));
    expect(missing).toEqual([]);
  });

  it("every fixture path named in a test exists (no stale table entries)", () => {
    const stale = [...covered.keys()].filter((rel) => !existsSync(fixturePath(rel)));
    expect(stale).toEqual([]);
  });
});
