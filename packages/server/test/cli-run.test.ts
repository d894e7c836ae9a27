// The CLI as the tests run it (cli-run.ts): as a child this worker waits for without stopping, its output
// read as the text it wrote.
import { describe, expect, it } from "vitest";
import { cliOnScratchDir } from "./cli-run.js";

const { tollgate } = cliOnScratchDir("tollgate-cli-run-");

describe("the CLI run by the tests", () => {
  it("leaves this worker's event loop free while it runs (a run that stops it fails vitest's worker)", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      const r = await tollgate("--version");
      expect(r.code, r.err).toBe(0);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
  });

  it("reads its output as UTF-8, a character whose bytes two chunks of the pipe split included", async () => {
    // 120 KB of 3-byte characters: the pipe hands them over in chunks (64 KB at most) that split some.
    const model = "表".repeat(40_000);
    const r = await tollgate("prices", "lookup", model);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`error: no price for openai:${model}; add it to a price book (--pricebook)\n`);
  });
});
