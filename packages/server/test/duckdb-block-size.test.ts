// TOLLGATE_DUCKDB_BLOCK_SIZE: the block size of a store file created from then on; a file keeps its own.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { duckDbBlockSizeFrom } from "../src/store/duckdb/block-size.js";
import { openDuckDb } from "../src/store/duckdb/open.js";

const size = (v?: string) => duckDbBlockSizeFrom(v === undefined ? {} : { TOLLGATE_DUCKDB_BLOCK_SIZE: v });

describe("TOLLGATE_DUCKDB_BLOCK_SIZE", () => {
  it("is DuckDB's own unless set, and takes the powers of two DuckDB takes", () => {
    expect(size()).toBeUndefined();
    expect(size("")).toBeUndefined();
    for (const v of [16384, 32768, 65536, 131072, 262144]) expect(size(String(v))).toBe(v);
  });

  it("refuses anything else, saying what it takes", () => {
    for (const v of ["8192", "524288", "20000", "16KB", "-16384", "lots"])
      expect(() => size(v), v).toThrow(
        `TOLLGATE_DUCKDB_BLOCK_SIZE must be a power of two from 16384 to 262144 bytes, got ${JSON.stringify(v)}`,
      );
  });
});

describe("a store file's block size", () => {
  const dirs: string[] = [];
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), "tg-blocks-"));
    dirs.push(d);
    return d;
  };
  afterEach(() => vi.unstubAllEnvs());
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const blockSizeOf = async (dataDir: string) => {
    const { instance, conn } = await openDuckDb(dataDir);
    try {
      const rows = (
        await conn.runAndReadAll(
          "SELECT block_size FROM pragma_database_size() WHERE database_name = current_database()",
        )
      ).getRowsJS();
      return Number(rows[0]![0]);
    } finally {
      conn.closeSync();
      instance.closeSync();
    }
  };

  it("is set when the file is created, and kept when it is opened again with another", async () => {
    const small = dir();
    vi.stubEnv("TOLLGATE_DUCKDB_BLOCK_SIZE", "16384");
    expect(await blockSizeOf(small)).toBe(16384);
    vi.stubEnv("TOLLGATE_DUCKDB_BLOCK_SIZE", "");
    expect(await blockSizeOf(small)).toBe(16384);

    const usual = dir();
    expect(await blockSizeOf(usual)).toBe(262144);
    vi.stubEnv("TOLLGATE_DUCKDB_BLOCK_SIZE", "16384");
    expect(await blockSizeOf(usual)).toBe(262144);
  });
});
