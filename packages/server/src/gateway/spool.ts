import {
  appendFileSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
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
    const file = join(this.dir, `${Date.now()}-${process.pid}-${this.#seq++}.ndjson`);
    const text = `${records.map((r) => JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? v.toString() : v))).join("\n")}\n`;
    appendFileSync(file, text);
    const fd = openSync(file, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.#depth += records.length;
  }

  /** Hands spooled files, oldest first, to `store`; a file is deleted only once stored. Stops at the first failure. */
  async drain(store: (records: CallRecord[]) => Promise<unknown>): Promise<void> {
    for (const f of this.#files()) {
      const path = join(this.dir, f);
      const records = readFileSync(path, "utf8")
        .split("\n")
        .filter(Boolean)
        .map(
          (line) =>
            JSON.parse(line, (k, v) => (MONEY.has(k) && typeof v === "string" ? BigInt(v) : v)) as CallRecord,
        );
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
