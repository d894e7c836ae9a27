import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
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

  it("of processes starting at once, exactly one takes the data dir (none left, or a dead one's lock)", async () => {
    const lockModule = fileURLToPath(new URL("../dist/data-dir-lock.js", import.meta.url));
    // Each process waits for the same instant, claims the dir, says whether it got it, and lives on (a
    // holder that exited would leave a dead process's lock, rightly taken over).
    const claim = `import { lockDataDir } from ${JSON.stringify(lockModule)};
      const [dir, at] = process.argv.slice(-2); while (Date.now() < Number(at)) {}
      try { lockDataDir(dir); console.log("held"); } catch { console.log("refused"); }
      setInterval(() => {}, 1000);`;
    const claimAll = async (d: string, n: number) => {
      const at = Date.now() + 300;
      const children = Array.from({ length: n }, () =>
        spawn(process.execPath, ["--input-type=module", "-e", claim, d, String(at)]),
      );
      try {
        return await Promise.all(
          children.map(
            (child) =>
              new Promise<string>((resolve) => {
                let out = "";
                child.stdout.on("data", (b) => {
                  out += b;
                  if (out.endsWith("\n")) resolve(out.trim());
                });
                child.on("close", () => resolve(out.trim()));
              }),
          ),
        );
      } finally {
        for (const child of children) child.kill("SIGKILL");
      }
    };
    dir = mkdtempSync(join(tmpdir(), "tg-lock-"));
    for (let trial = 0; trial < 20; trial++) {
      const d = join(dir, String(trial));
      mkdirSync(d);
      if (trial % 2) writeFileSync(join(d, "process.lock"), "999999999"); // a dead process's
      const said = await claimAll(d, 8);
      expect(
        said.filter((s) => s === "held"),
        `trial ${trial}: ${said}`,
      ).toHaveLength(1);
    }
  }, 60_000);
});
