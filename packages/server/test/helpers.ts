import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { uuidv7 } from "@tollgate/core";
import { openRuntime, type Runtime } from "../src/runtime.js";

/** A valid minimal call record; `overrides` replace (or, when `undefined`, remove) fields. */
export function validRecord(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const rec: Record<string, unknown> = {
    event_id: uuidv7(),
    ts_start: Date.now() - 1_000,
    provider: "openai",
    model: "gpt-4o-mini",
    api: "openai.chat",
    input_uncached_tokens: 100,
    output_tokens: 20,
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete rec[k];
    else rec[k] = v;
  }
  return rec;
}

/** A runtime on its own fresh temp data dir; `close()` also removes the dir. */
export async function openTestRuntime(): Promise<Runtime & { dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "tollgate-test-"));
  const rt = await openRuntime({ dataDir, pricebookPath: null });
  return {
    ...rt,
    dataDir,
    close: async () => {
      await rt.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

type App = Runtime["app"];

// biome-ignore lint/suspicious/noExplicitAny: test responses are inspected loosely
export type Json = any;

/** POSTs a batch (records, or a raw string / bytes body) to /v1/events with a bearer key. */
export async function postEvents(
  app: App,
  key: string | null,
  body: unknown,
  query = "",
): Promise<{ status: number; json: Json }> {
  const raw = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await app.request(`/v1/events${query}`, {
    method: "POST",
    headers,
    body: raw as NonNullable<RequestInit["body"]>,
  });
  return { status: res.status, json: await res.json() };
}

/** GET with a bearer key; answers status + parsed JSON. */
export async function getJson(
  app: App,
  key: string | null,
  path: string,
): Promise<{ status: number; json: Json }> {
  const res = await app.request(path, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: res.status, json: await res.json() };
}

/** Creates a key through POST /api/keys with `adminKey` (root token or an admin key). */
export async function createKey(app: App, adminKey: string, workspace: string, role: string) {
  const res = await app.request("/api/keys", {
    method: "POST",
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: JSON.stringify({ workspace, role }),
  });
  return { status: res.status, json: (await res.json()) as Json };
}
