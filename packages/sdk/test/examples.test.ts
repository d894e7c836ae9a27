// The examples/ folder runs: each script, as a user would start it, against a real Tollgate server
// (provider calls go to the examples' own local stand-in: no provider keys here).
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey, startTestGateway } from "../../server/test/helpers.js";

const run = promisify(execFile);
const repo = fileURLToPath(new URL("../../../", import.meta.url));
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let key: string;

beforeAll(async () => {
  gw = await startTestGateway("http://127.0.0.1:9");
  key = (await createKey(gw.runtime.app, gw.runtime.rootToken, "default", "ingest")).json.key;
});
afterAll(() => gw?.stop());

const example = async (name: string) => {
  const env: NodeJS.ProcessEnv = { ...process.env, TOLLGATE_URL: gw.url, TOLLGATE_API_KEY: key };
  delete env.OPENAI_API_KEY;
  delete env.ANTHROPIC_API_KEY;
  return run(process.execPath, [`examples/${name}`], { cwd: repo, env, timeout: 30_000 });
};
const stored = (feature: string) =>
  gw.runtime.store.query({ workspaceId: "default", where: { feature }, limit: 100 });

describe("examples", () => {
  it("wrap-openai.mjs records an agent span, a tool span and two priced calls", async () => {
    const { stdout } = await example("wrap-openai.mjs");
    expect(stdout).toMatch(/records delivered/);
    const rows = await stored("support-chat");
    expect(rows.map((r) => r.kind).sort()).toEqual(["agent", "llm", "llm", "tool"]);
    const llm = rows.filter((r) => r.kind === "llm");
    expect(llm.every((r) => r.priced && r.cost_nanousd > 0n && r.customer_id === "acme")).toBe(true);
    expect(llm.every((r) => r.cache_read_tokens === 1536 && r.input_uncached_tokens === 314)).toBe(true);
  });

  it("otel-genai.mjs: OTLP spans from the OpenTelemetry SDK become an agent span, a tool span and a priced call", async () => {
    const { stdout } = await example("otel-genai.mjs");
    expect(stdout).toMatch(/spans exported/);
    const rows = await stored("ticket-triage");
    expect(rows.map((r) => r.kind).sort()).toEqual(["agent", "llm", "tool"]);
    const llm = rows.find((r) => r.kind === "llm")!;
    expect(llm).toMatchObject({
      provider: "openai",
      customer_id: "initech",
      user_id: "u-7",
      deployment: "prod",
    });
    expect(llm).toMatchObject({
      input_uncached_tokens: 352,
      cache_read_tokens: 2048,
      output_tokens: 120,
      priced: true,
    });
    expect(rows.find((r) => r.kind === "agent")!.cost_nanousd).toBe(0n);
  });

  it("without a key or a server, an example says how to make a key, with a command that works as given", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tollgate-examples-"));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, TOLLGATE_DATA_DIR: join(dir, "none") };
      delete env.TOLLGATE_API_KEY;
      const refused = await run(process.execPath, ["examples/otel-genai.mjs"], { cwd: repo, env }).then(
        () => null,
        (e: { code: number; stderr: string }) => e,
      );
      expect(refused?.code).toBe(2);
      const command = /npx tollgate (keys create [^)]*)\)/.exec(refused!.stderr)?.[1];
      expect(command, refused!.stderr).toBeDefined();
      const cli = join(repo, "packages/server/bin/tollgate.js");
      const made = await run(process.execPath, [
        cli,
        "--data-dir",
        join(dir, "data"),
        ...command!.split(" "),
      ]);
      expect(made.stdout).toMatch(/^tg_ingest_/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("wrap-anthropic.mjs records a priced call with its cache write", async () => {
    const { stdout } = await example("wrap-anthropic.mjs");
    expect(stdout).toMatch(/records delivered/);
    const [row] = await stored("ticket-summary");
    expect(row).toMatchObject({
      provider: "anthropic",
      customer_id: "globex",
      cache_write_5m_tokens: 2048,
      priced: true,
    });
    expect(row!.cost_nanousd > 0n).toBe(true);
  });
});
