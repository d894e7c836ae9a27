import { describe, expect, it } from "vitest";
import { duckDbMemoryLimitFrom } from "../src/store/duckdb/memory-limit.js";

const limit = (v?: string) =>
  duckDbMemoryLimitFrom(v === undefined ? {} : { TOLLGATE_DUCKDB_MEMORY_LIMIT: v });

describe("TOLLGATE_DUCKDB_MEMORY_LIMIT", () => {
  it("defaults to 256MB and passes DuckDB's sizes through", () => {
    expect(limit()).toBe("256MB");
    expect(limit("")).toBe("256MB");
    for (const v of ["128MB", "1GB", "0.5GiB", "200 MiB", "131072KB"]) expect(limit(v)).toBe(v);
  });

  it("refuses less than 128MB, in DuckDB's units (MB = 1000², MiB = 1024²)", () => {
    for (const v of ["64MB", "127MB", "122MiB", "0.1GB", "1000KiB"])
      expect(() => limit(v), v).toThrow(`TOLLGATE_DUCKDB_MEMORY_LIMIT must be at least 128MB (got ${v})`);
    expect(limit("123MiB")).toBe("123MiB"); // 128.97 million bytes
  });

  it("refuses what is not a size", () => {
    for (const v of ["256", "lots", "256 M", "-1GB", "1TB"])
      expect(() => limit(v), v).toThrow(`must look like 256MB or 1GB, got ${JSON.stringify(v)}`);
  });
});
