// tollgate serve caps how far the JS heap grows past its live size before a full GC
// (TOLLGATE_HEAP_GROWTH_PERCENT), which bounds the gateway's RSS under load.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { heapGrowthFrom } from "../src/heap-growth.js";

const HEAP_GROWTH = new URL("../dist/heap-growth.js", import.meta.url).href;
/** A child run without blocking this worker: it churns for seconds, and vitest's worker must keep reporting. */
const execFileAsync = promisify(execFile);

/**
 * Largest heap of a child process that keeps ~10 MB live while turning it over (each object outlives a few
 * scavenges, so it is promoted and dies old, as a gateway's pending records do), under `percent`.
 */
async function maxHeapMb(percent: number): Promise<number> {
  const script = `
    import { limitHeapGrowth } from ${JSON.stringify(HEAP_GROWTH)};
    limitHeapGrowth(${percent});
    const ring = new Array(40_000);
    let max = 0;
    for (let i = 0; i < 3_000_000; i++) {
      ring[i % ring.length] = { a: i, b: "s" + i, c: [i, i + 1, i + 2], d: { x: i } };
      if (i % 2000 === 0) {
        max = Math.max(max, process.memoryUsage().heapTotal);
        await new Promise((r) => setImmediate(r));
      }
    }
    console.log(max);`;
  // Rejects, with the child's stderr, if it fails.
  const { stdout } = await execFileAsync(process.execPath, ["--input-type=module", "-e", script]);
  return Number(stdout) / 1048576;
}

describe("heap growth", () => {
  it("reads TOLLGATE_HEAP_GROWTH_PERCENT: default 100, 0 (V8's own) to 1000, whole numbers only", () => {
    expect(heapGrowthFrom({})).toBe(100);
    expect(heapGrowthFrom({ TOLLGATE_HEAP_GROWTH_PERCENT: "" })).toBe(100);
    expect(heapGrowthFrom({ TOLLGATE_HEAP_GROWTH_PERCENT: "0" })).toBe(0);
    expect(heapGrowthFrom({ TOLLGATE_HEAP_GROWTH_PERCENT: "1000" })).toBe(1000);
    for (const bad of ["-1", "1001", "1.5", "fifty", " 50"])
      expect(() => heapGrowthFrom({ TOLLGATE_HEAP_GROWTH_PERCENT: bad })).toThrow(
        /TOLLGATE_HEAP_GROWTH_PERCENT must be a whole number from 0 \(V8's own policy\) to 1000/,
      );
  });

  it("a capped heap stays well below V8's own growth on the same churn", async () => {
    const own = await maxHeapMb(0);
    const capped = await maxHeapMb(50);
    expect(capped).toBeLessThan(own * 0.8);
  });
});
