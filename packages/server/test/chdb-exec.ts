import type { Session } from "chdb";
import { type ChExec, SESSION_SETTINGS } from "../src/store/clickhouse/exec.js";

/**
 * The ClickHouse store's connection on chdb: modern ClickHouse (26.x) in this process. Running the same
 * store on it checks that every statement written for 18.16 also parses and answers alike on today's
 * servers.
 */
export class ChdbExec implements ChExec {
  #ready: Promise<void>;
  constructor(private readonly session: Session) {
    // insert_distributed_sync is a server setting on 26.x (distributed_foreground_insert); not needed here.
    const { insert_distributed_sync: _, ...settings } = SESSION_SETTINGS;
    this.#ready = (async () => {
      for (const [k, v] of Object.entries(settings))
        await session.queryAsync(`SET ${k} = ${typeof v === "string" ? `'${v}'` : v}`);
    })();
  }

  async command(sql: string): Promise<void> {
    await this.#ready;
    await this.session.queryAsync(sql);
  }

  async rows<T>(sql: string): Promise<T[]> {
    await this.#ready;
    const text = (await this.session.queryAsync(sql, { format: "JSONEachRow" })).text();
    return text
      .split("\n")
      .filter((l) => l.length)
      .map((l) => JSON.parse(l) as T);
  }

  async insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
    if (!rows.length) return;
    await this.#ready;
    await this.session.queryAsync(
      `INSERT INTO ${table} FORMAT JSONEachRow\n${rows.map((r) => JSON.stringify(r)).join("\n")}`,
    );
  }

  async close(): Promise<void> {}
}
