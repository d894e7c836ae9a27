import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

/**
 * A small tmpfs mounted at `<dir>/disk`, where the machine lets us mount one (root with CAP_SYS_ADMIN; CI's
 * machine does), or null. `unmount` it when done.
 */
export function smallDisk(dir: string, size = "40m"): string | null {
  const at = join(dir, "disk");
  mkdirSync(at, { recursive: true });
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", at], { stdio: "ignore" });
    return at;
  } catch {
    return null;
  }
}

/** Makes a mounted disk read-only (what it holds stays readable). */
export function remountReadOnly(disk: string): void {
  execFileSync("mount", ["-o", "remount,ro", disk]);
}

export function unmount(disk: string): void {
  execFileSync("umount", ["-l", disk]);
}
