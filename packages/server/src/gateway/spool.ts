import {
  appendFileSync,
  closeSync,
  existsSync,
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
import {
  type CallRecord,
  COST_FIELDS,
  FIRST_LAYOUT_TOKEN_FIELDS,
  storedRecordProblem,
  USAGE_FIELDS,
} from "@tollgate/core";

const MONEY = ["cost_nanousd", ...COST_FIELDS] as const;
/**
 * Counts a record spooled by an earlier version may lack (there was none then). Not the first layout's
 * token counts: every version wrote them, so one missing is a damaged line (a key a bad byte renamed), set
 * aside rather than stored as 0.
 */
const ADDED_COUNTS = USAGE_FIELDS.filter(
  (f) => !(FIRST_LAYOUT_TOKEN_FIELDS as readonly string[]).includes(f),
);

/**
 * Records that could not be stored yet (store down, slow, or the in-memory queue full) wait here on disk,
 * one NDJSON file per spill, fsynced, until `drain` hands them back to the store. Nothing that reaches
 * the spool is lost, and memory stays bounded whatever the store does.
 */
export class Spool {
  /**
   * The records of each spool file this process counted: spilled, written again by a set-aside, or found at
   * the start. A file gone from disk takes away what it was counted for; a file put in the spool while it
   * runs (a repaired line put back) was not, and its drain takes nothing off the others' count.
   */
  readonly #counted = new Map<string, number>();
  #seq = 0;
  /** Holds in progress (hold), and the drains waiting for them to end. */
  #holds = 0;
  #unheld: (() => void)[] = [];

  /** `log` is told of each set-aside: the calls in it are not stored unless someone repairs them. */
  constructor(
    private readonly dir: string,
    private readonly log: (msg: string) => void = () => {},
  ) {
    mkdirSync(dir, { recursive: true });
    this.#salvage();
    for (const f of this.files()) this.#counted.set(f, lines(join(dir, f)).length);
  }

  /**
   * Records waiting on disk (the recorder replays while there are any): those of the files this process
   * counted, not of a file put in the spool while it runs (stored at the next start, or with a drain's others).
   */
  get depth(): number {
    let records = 0;
    for (const n of this.#counted.values()) records += n;
    return records;
  }

  /** Writes the records to a new spool file, or throws (disk full, read-only) leaving none behind. */
  spill(records: readonly CallRecord[]): void {
    if (!records.length) return;
    const json = records.map((r) => JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
    this.#counted.set(this.#write(json), records.length);
  }

  /**
   * Hands spooled files, oldest first, to `store`; a file is deleted only once stored. Stops at the first
   * store failure (to retry later). Lines that cannot be read back are set aside in `<file>.bad` for a
   * human; the rest of their file is stored all the same. So are records the store refused that are not
   * as the gateway builds them (a damaged line that still parses): they would fail their file forever.
   */
  async drain(store: (records: CallRecord[]) => Promise<unknown>): Promise<void> {
    const files = this.files();
    // A file counted and gone without a drain (moved aside by hand) is no longer waiting.
    const present = new Set(files);
    for (const f of this.#counted.keys()) if (!present.has(f)) this.#counted.delete(f);
    for (const f of files) {
      while (this.#holds) await new Promise<void>((wake) => this.#unheld.push(wake));
      const path = join(this.dir, f);
      const records: CallRecord[] = [];
      const good: string[] = [];
      const bad: string[] = [];
      for (const line of lines(path)) {
        const record = parseRecord(line);
        if (record) {
          records.push(record);
          good.push(line);
        } else bad.push(line);
      }
      if (bad.length) {
        this.#setAside(f, good, bad);
        continue;
      }
      try {
        await store(records);
      } catch (e) {
        const unsound = new Set(records.filter((r) => storedRecordProblem(r) !== null));
        if (!unsound.size) throw e; // the store's own failure: tried again later
        this.#setAside(
          f,
          good.filter((_, i) => !unsound.has(records[i]!)),
          good.filter((_, i) => unsound.has(records[i]!)),
        );
        continue;
      }
      rmSync(path, { force: true });
      this.#counted.delete(f);
    }
  }

  /**
   * Runs `fn` while no drain takes up a file: the spool's files stay as they are (new ones may come), read
   * over several turns. A file whose store was under way may still go, its calls stored.
   */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    this.#holds++;
    try {
      return await fn();
    } finally {
      if (--this.#holds === 0) for (const wake of this.#unheld.splice(0)) wake();
    }
  }

  /** Sets `bad` aside in `<file>.bad`, once; `good` goes back as a file of its own, stored by the next drain. */
  #setAside(file: string, good: readonly string[], bad: readonly string[]): void {
    const path = join(this.dir, file);
    // The good lines first: a disk too full for them fails this set-aside before anything is added to the
    // `.bad` file, which the next try would add to again. Counted at once: should the `.bad` append fail,
    // they wait in two files until the next try.
    if (good.length) this.#counted.set(this.#write(good), good.length);
    appendFileSync(`${path}.bad`, `${bad.join("\n")}\n`);
    rmSync(path, { force: true });
    this.#counted.delete(file);
    this.log(
      `${bad.length} spooled call records are damaged and NOT stored: set aside in ${path}.bad. A line repaired ` +
        `and put back in a file of ${this.dir} named *.ndjson is stored at the next start`,
    );
  }

  /**
   * The readable records waiting on disk, a file at a time, left where they are. A file that cannot be read
   * now (too many open files, an I/O error) is told of and passed over: the files after it are still read.
   */
  *records(): Generator<CallRecord[]> {
    for (const f of this.files()) {
      let records: CallRecord[];
      try {
        records = this.recordsOf(f);
      } catch (e) {
        this.log(
          `spool file ${f} could not be read, its calls count against limits from the next start on: ${(e as Error).message}`,
        );
        continue;
      }
      yield records;
    }
  }

  /** The readable records of one spool file (none if it is gone). */
  recordsOf(file: string): CallRecord[] {
    const path = join(this.dir, file);
    return existsSync(path) ? lines(path).flatMap((line) => parseRecord(line) ?? []) : [];
  }

  /**
   * NDJSON lines written aside in full, fsynced, then renamed (and the rename synced): a file is whole or
   * absent. Returns the file's name.
   */
  #write(lines: readonly string[]): string {
    const bytes = Buffer.from(`${lines.join("\n")}\n`);
    const name = this.#freshName();
    const tmp = join(this.dir, `${name}.tmp`);
    try {
      const fd = openSync(tmp, "w");
      try {
        // A write may take only part of the bytes (a disk nearly full): the rest is written, or it throws.
        for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, join(this.dir, name));
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    syncDir(this.dir);
    return name;
  }

  /**
   * A name no file of the spool has: the rename would replace one silently. A process that starts again
   * under the same pid (pid 1 in a container) counts from 0 again, and a clock stepped back may give the
   * same millisecond.
   */
  #freshName(): string {
    for (;;) {
      const name = `${Date.now()}-${process.pid}-${this.#seq++}.ndjson`;
      if (!existsSync(join(this.dir, name)) && !existsSync(join(this.dir, `${name}.tmp`))) return name;
    }
  }

  /**
   * A `.tmp` file is a spill a crash (kill -9) cut short: its records had left memory. Its whole lines
   * are kept as a spool file of their own; a torn last line is all that is lost.
   */
  #salvage(): void {
    for (const f of readdirSync(this.dir).filter((n) => n.endsWith(".ndjson.tmp"))) {
      const path = join(this.dir, f);
      const whole = lines(path).filter((line) => parseRecord(line) !== null);
      try {
        if (whole.length) this.#write(whole);
      } catch {
        continue; // no room to save them yet: the .tmp stays for the next start
      }
      rmSync(path, { force: true });
    }
  }

  /** The spool's files, oldest first. */
  files(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(".ndjson"))
      .sort(byNumbersInName);
  }
}

/**
 * Names `<ms>-<pid>-<n>.ndjson` by their numbers, as numbers: the files of one millisecond in the order they
 * were spilled (text would put `-10` before `-9`).
 */
const byNumbersInName = new Intl.Collator("en", { numeric: true }).compare;

function lines(path: string): string[] {
  return readFileSync(path, "utf8").split("\n").filter(Boolean);
}

/** One spooled record, its money back to bigint (only the record's own fields: metadata stays text); null if unreadable. */
function parseRecord(line: string): CallRecord | null {
  try {
    const r = JSON.parse(line) as Record<string, unknown>;
    if (typeof r !== "object" || r === null || Array.isArray(r)) return null;
    for (const k of MONEY) if (typeof r[k] === "string") r[k] = BigInt(r[k]);
    // Spooled by a version before a count was kept (tool calls, cached media, image output, audio length):
    // there was none.
    for (const k of ADDED_COUNTS) r[k] ??= 0;
    r.parent_event_id ??= null;
    r.cost_tool_calls_nanousd ??= 0n;
    return r as unknown as CallRecord;
  } catch {
    return null;
  }
}

/** Makes a rename in `dir` durable (a crash right after it must not bring the old name back). */
function syncDir(dir: string): void {
  if (process.platform === "win32") return; // a directory cannot be opened (nor needs syncing) there
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
