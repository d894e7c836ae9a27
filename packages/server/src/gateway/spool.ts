import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { type CallRecord, COST_FIELDS } from "@tollgate/core";

const MONEY = new Set<string>(["cost_nanousd", ...COST_FIELDS]);

/**
 * Records that could not be stored yet (store down, slow, or the in-memory queue full) wait here on disk,
 * one NDJSON file per spill, fsynced, until `drain` hands them back to the store. Nothing is lost and
 * memory stays bounded whatever the store does.
 */
export class Spool {
  #depth = 0;
  #seq = 0;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    for (const f of this.#files())
      this.#depth += readFileSync(join(dir, f), "utf8").split("\n").filter(Boolean).length;
  }

  /** Records waiting on disk. */
  get depth(): number {
    return this.#depth;
  }

  spill(records: readonly CallRecord[]): void {
    if (!records.length) return;
    const name = `${Date.now()}-${process.pid}-${this.#seq++}.ndjson`;
    const tmp = join(this.dir, `${name}.tmp`);
    const text = `${records.map((r) => JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? v.toString() : v))).join("\n")}\n`;
    // Written aside, fsynced, then renamed: a spool file is whole or absent, never torn by a crash.
    const fd = openSync(tmp, "w");
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(this.dir, name));
    this.#depth += records.length;
  }

  /**
   * Hands spooled files, oldest first, to `store`; a file is deleted only once stored. Stops at the first
   * store failure (to retry later). A file that cannot be read back is set aside as `.bad` for a human,
   * so it does not block the ones after it.
   */
  async drain(store: (records: CallRecord[]) => Promise<unknown>): Promise<void> {
    for (const f of this.#files()) {
      const path = join(this.dir, f);
      const lines = readFileSync(path, "utf8").split("\n").filter(Boolean);
      let records: CallRecord[];
      try {
        records = lines.map(
          (line) =>
            JSON.parse(line, (k, v) => (MONEY.has(k) && typeof v === "string" ? BigInt(v) : v)) as CallRecord,
        );
      } catch {
        renameSync(path, `${path}.bad`);
        this.#depth -= lines.length;
        continue;
      }
      await store(records);
      rmSync(path, { force: true });
      this.#depth -= records.length;
    }
  }

  #files(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(".ndjson"))
      .sort((a, b) => Number(a.split("-")[0]) - Number(b.split("-")[0]) || a.localeCompare(b));
  }
}
