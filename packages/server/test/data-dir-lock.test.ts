import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { lockDataDir } from "../src/data-dir-lock.js";
import { smallDisk, unmount } from "./small-disk.js";

// A filesystem without hard links (FAT and exFAT drives, SMB shares without Unix extensions) answers link()
// with EPERM or ENOTSUP: set `noLinks.code` to be on one.
const noLinks = vi.hoisted(() => ({ code: null as string | null }));
// Other processes acting between this one's steps: `onRead` runs after its next read of process.lock,
// `onRename` after any rename it makes.
const between = vi.hoisted(() => ({
  onRead: null as (() => void) | null,
  onRename: null as (() => void) | null,
}));
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  return {
    ...fs,
    linkSync: (existing: string, created: string) => {
      if (noLinks.code) throw Object.assign(new Error(`${noLinks.code}: link`), { code: noLinks.code });
      return fs.linkSync(existing, created);
    },
    readFileSync: ((...args: Parameters<typeof fs.readFileSync>) => {
      const out = fs.readFileSync(...args);
      const then = between.onRead;
      if (then && String(args[0]).endsWith("process.lock")) {
        between.onRead = null;
        then();
      }
      return out;
    }) as typeof fs.readFileSync,
    renameSync: (from: string, to: string) => {
      fs.renameSync(from, to);
      between.onRename?.();
    },
  };
});

/** What this process's lock says: its pid and, on Linux, when it started. */
const ownLock = new RegExp(`^${process.pid} \\d+$`);
/** When a process started, as its lock says it (`/proc/PID/stat`'s 22nd field). */
const startOf = (pid: number) => readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[19];

let dir: string;
afterEach(() => {
  noLinks.code = null;
  between.onRead = null;
  between.onRename = null;
  rmSync(dir, { recursive: true, force: true });
});

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

  it("refuses a lock naming a live process and when it started", () => {
    dir = mkdtempSync(join(tmpdir(), "tg-lock-"));
    const holder = spawn("sleep", ["30"]);
    try {
      const pid = holder.pid as number;
      writeFileSync(join(dir, "process.lock"), `${pid} ${startOf(pid)}`);
      expect(() => lockDataDir(dir)).toThrow(`in use by another Tollgate process (pid ${pid})`);
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it("takes over a lock whose pid now belongs to a process started later (a crash, then the pid reused)", () => {
    dir = mkdtempSync(join(tmpdir(), "tg-lock-"));
    const other = spawn("sleep", ["30"]);
    try {
      const pid = other.pid as number;
      const earlier = String(Number(startOf(pid)) - 1);
      writeFileSync(join(dir, "process.lock"), `${pid} ${earlier}`);
      const unlock = lockDataDir(dir);
      expect(readFileSync(join(dir, "process.lock"), "utf8")).toMatch(ownLock);
      unlock();
    } finally {
      other.kill("SIGKILL");
    }
  });

  it("on a full disk, fails with the disk's error and leaves no file of its own behind", (ctx) => {
    dir = mkdtempSync(join(tmpdir(), "tg-lock-"));
    const disk = smallDisk(dir, "1m");
    if (disk === null) return ctx.skip(); // no mount allowed here
    try {
      // Written until the disk refuses: not one more page for the lock's content.
      expect(() => writeFileSync(join(disk, "filler"), Buffer.alloc(2 * 1024 * 1024))).toThrow(/ENOSPC/);
      expect(() => lockDataDir(disk)).toThrow(/ENOSPC/);
      expect(readdirSync(disk)).toEqual(["filler"]);
    } finally {
      unmount(disk);
    }
  });

  it("takes over a lock left by a dead process, and releases it", () => {
    dir = mkdtempSync(join(tmpdir(), "tg-lock-"));
    writeFileSync(join(dir, "process.lock"), "999999999");
    const unlock = lockDataDir(dir);
    expect(readFileSync(join(dir, "process.lock"), "utf8")).toMatch(ownLock);
    unlock();
    expect(existsSync(join(dir, "process.lock"))).toBe(false);
  });

  it("a process that found a dead process's lock never moves aside the lock another took over meanwhile (a third could take the name: two holders)", () => {
    dir = mkdtempSync(join(tmpdir(), "tg-lock-"));
    const lock = join(dir, "process.lock");
    writeFileSync(lock, "999999999"); // a dead process's
    const a = spawn("sleep", ["30"]);
    const c = spawn("sleep", ["30"]);
    try {
      // As this process reads the dead one's lock, A takes it over (removes it, links its own)…
      between.onRead = () => {
        rmSync(lock);
        writeFileSync(lock, String(a.pid));
      };
      // …and C, starting, takes the name whenever it is free.
      between.onRename = () => {
        try {
          writeFileSync(lock, String(c.pid), { flag: "wx" });
        } catch {}
      };
      expect(() => lockDataDir(dir)).toThrow(
        new RegExp(`in use by another Tollgate process \\(pid ${a.pid}\\)`),
      );
      expect(readFileSync(lock, "utf8")).toBe(String(a.pid)); // A's lock, still in place: C was refused
    } finally {
      a.kill("SIGKILL");
      c.kill("SIGKILL");
    }
  });

  it("on a filesystem without hard links, the data dir is still locked: taken, refused to another, taken over from a dead process, no file left aside", async () => {
    for (const code of ["EPERM", "ENOTSUP"]) {
      noLinks.code = code;
      dir = mkdtempSync(join(tmpdir(), "tg-lock-"));
      const unlock = lockDataDir(dir);
      expect(readFileSync(join(dir, "process.lock"), "utf8")).toMatch(ownLock);
      unlock();
      const holder = spawn("sleep", ["30"]);
      try {
        writeFileSync(join(dir, "process.lock"), String(holder.pid));
        expect(() => lockDataDir(dir)).toThrow(/in use by another Tollgate process/);
      } finally {
        holder.kill("SIGKILL");
      }
      writeFileSync(join(dir, "process.lock"), "999999999");
      lockDataDir(dir)();
      expect(readdirSync(dir)).toEqual([]);
      rmSync(dir, { recursive: true, force: true });
    }
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
