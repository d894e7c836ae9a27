import { randomBytes } from "node:crypto";
import { PricingEngine } from "@tollgate/core";
import { createApp } from "./api/app.js";
import { KeyResolver } from "./auth/keys.js";
import type { RuntimeOptions } from "./config.js";
import { IngestService } from "./ingest/service.js";
import { GroupCommitWriter } from "./ingest/writer.js";
import { loadPriceBook } from "./pricebook-file.js";
import { DuckDbStore } from "./store/duckdb/store.js";

/** Everything one Tollgate process needs, wired together: store, pricing, ingest, HTTP app. */
export interface Runtime {
  app: ReturnType<typeof createApp>;
  store: DuckDbStore;
  engine: PricingEngine;
  /** Full access to every workspace; handed only to local processes (server.json is mode 0600). */
  rootToken: string;
  close(): Promise<void>;
}

export async function openRuntime(opts: RuntimeOptions): Promise<Runtime> {
  const engine = new PricingEngine(opts.pricebookPath ? loadPriceBook(opts.pricebookPath) : null);
  const store = await DuckDbStore.open(opts.dataDir);
  const rootToken = `tg_root_${randomBytes(24).toString("base64url")}`;
  const writer = new GroupCommitWriter(store, { concurrency: store.writeConcurrency });
  const ingest = new IngestService(writer, engine);
  const app = createApp({
    ingest,
    events: store,
    keyStore: store,
    keys: new KeyResolver(store, rootToken),
    engine,
  });
  return { app, store, engine, rootToken, close: () => store.close() };
}
