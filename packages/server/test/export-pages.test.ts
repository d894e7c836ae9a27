// `tollgate export calls` pages through /api/export/calls: every page must answer the same window.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { appClient } from "../src/cli/client.js";
import { exportCalls } from "../src/cli/export.js";
import { openTestRuntime, postEvents, validRecord } from "./helpers.js";

let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const dir = mkdtempSync(join(tmpdir(), "tollgate-export-pages-"));
beforeAll(async () => {
  rt = await openTestRuntime();
});
afterAll(async () => {
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

it("a relative window (30d to now) is the first page's: calls arriving during the export stay out", async () => {
  const ts = Date.now() - 60_000;
  await postEvents(
    rt.app,
    rt.rootToken,
    [0, 1, 2, 3, 4].map((i) => validRecord({ ts_start: ts + i })),
  );
  const client = appClient(rt);
  let pages = 0;
  const racing = {
    async request(method: string, path: string, body?: unknown) {
      const res = await client.request(method, path, body);
      // A call made (and stored) while the export runs, after its first page was read.
      if (pages++ === 0) {
        await new Promise((r) => setTimeout(r, 5));
        await postEvents(rt.app, rt.rootToken, [validRecord({ ts_start: Date.now() })]);
        await new Promise((r) => setTimeout(r, 5));
      }
      return res;
    },
  };
  const out = join(dir, "calls.json");
  const opts = { out, format: "json", progress: false, workspace: "default", from: "30d", to: "now" };
  const res = await exportCalls(racing, opts, "json", 2);
  const file = JSON.parse(readFileSync(out, "utf8"));
  const end = Date.parse(file.meta.window.to);
  expect(file.calls.every((c: { ts_start: number }) => c.ts_start < end)).toBe(true);
  expect(res.rows).toBe(5);
  expect(file.meta.rows).toBe(5);
});
