import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { lockDataDir } from "../src/data-dir-lock.js";

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("data dir lock (replicas on a shared store)", () => {
  it("refuses a data dir held by a live process, naming it", async () => {
    dir = mkdtempSync(join(tmpdir(), "tg-lock-"));
    const holder = spawn("sleep", ["30"]);
    try {
      writeFileSync(join(dir, "process.lock"), String(holder.pid));
      expect(() => lockDataDir(dir)).toThrow(
        new RegExp(`in use by another Tollgate process \\(pid ${holder.pid}\\)`),
      );
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it("takes over a lock left by a dead process, and releases it", () => {
    dir = mkdtempSync(join(tmpdir(), "tg-lock-"));
    writeFileSync(join(dir, "process.lock"), "999999999");
    const unlock = lockDataDir(dir);
    expect(readFileSync(join(dir, "process.lock"), "utf8")).toBe(String(process.pid));
    unlock();
    expect(existsSync(join(dir, "process.lock"))).toBe(false);
  });
});
