// `tollgate --clickhouse URL demo`: the demo's calls go to ClickHouse, so the next step it prints must read
// them there, not the data dir's DuckDB file (which holds none of them).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoNextStep } from "../src/cli/demo.js";
import { cliOnScratchDir, spawnCli } from "./cli-run.js";
import { startClickHouse, type TestClickHouse } from "./clickhouse-server.js";

const { dir, dataDir, tollgate } = cliOnScratchDir("tollgate-cli-demo-clickhouse-");

describe("demo into ClickHouse", () => {
  let ch: TestClickHouse;
  beforeAll(async () => {
    ch = await startClickHouse();
  });
  afterAll(() => ch?.stop());

  it("prints a next step that reads the demo's calls from that ClickHouse, as printed", async () => {
    const url = `${ch.url}/tg_demo_next`;
    const d = await tollgate("--clickhouse", url, "demo", "--days", "3", "--calls-per-day", "50");
    expect(d.code, d.err).toBe(0);
    const next = /next: npx tollgate (.*)$/m.exec(d.out)?.[1];
    expect(next, d.out).toBe(`--data-dir ${dataDir} --clickhouse ${url} spend --by feature --from 3d`);
    const res = await spawnCli(next!.split(" "), { cwd: dir });
    expect(res.code, res.err).toBe(0);
    expect(res.err).toBe("");
    expect(res.out).toContain("summarize");
  });

  it("never prints the ClickHouse password (serve --demo logs its next step)", () => {
    expect(demoNextStep(3, { clickhouse: "http://ops:s3cret@ch.internal:8123/tollgate" }, "default")).toBe(
      "npx tollgate --clickhouse 'http://ops:***@ch.internal:8123/tollgate' spend --by feature --from 3d",
    );
  });
});
