import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file is packages/core/test/fixtures.ts). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** Shared fixtures live beside the repository (`../shared/fixtures`), in CI as in development. */
export const FIXTURES_DIR = path.resolve(REPO_ROOT, "../shared/fixtures");

/** Absolute path of a fixture given relative to FIXTURES_DIR, e.g. `providers/openai/x.json`. */
export function fixturePath(rel: string): string {
  return path.join(FIXTURES_DIR, rel);
}

export function readFixtureText(rel: string): string {
  return readFileSync(fixturePath(rel), "utf8");
}

export function readFixtureBytes(rel: string): Buffer {
  return readFileSync(fixturePath(rel));
}

export function readFixtureJson(rel: string): unknown {
  return JSON.parse(readFixtureText(rel));
}

/** A `.chunks.jsonl` capture: one decoded JSON event per non-empty line. */
export function readFixtureJsonl(rel: string): unknown[] {
  return readFixtureText(rel)
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as unknown);
}

/** Every file under a fixture directory, as paths relative to FIXTURES_DIR (sorted, `/`-separated). */
export function listFixtureFiles(relDir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of readdirSync(fixturePath(rel), { withFileTypes: true })) {
      const child = `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(child);
      else out.push(child);
    }
  };
  walk(relDir);
  return out.sort();
}
