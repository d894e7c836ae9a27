import { type ClickHouseClient, ClickHouseError, ClickHouseLogLevel, createClient } from "@clickhouse/client";

/**
 * What the ClickHouse store needs of a connection: DDL, SELECTs returning JSON rows, and row inserts.
 * The HTTP implementation below serves production; tests also run the same store on chdb (in-process
 * modern ClickHouse) to check that every statement parses and means the same on both generations.
 */
export interface ChExec {
  command(sql: string): Promise<void>;
  /** Rows of a SELECT, as JSONEachRow objects (64-bit integers as strings). */
  rows<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * Settings every connection sends explicitly (DESIGN.md): 18.16 and modern servers differ in their
 * defaults for these.
 */
export const SESSION_SETTINGS = {
  output_format_json_quote_64bit_integers: 1,
  date_time_input_format: "basic",
  input_format_skip_unknown_fields: 1,
  // Inserts into a Distributed table are visible (and deduplicable) when they return.
  insert_distributed_sync: 1,
} as const;

/**
 * A request sent on a kept-alive socket the server has just closed fails with "socket hang up" or
 * ECONNRESET before the server saw it. The client drops idle sockets after IDLE_SOCKET_TTL_MS, below the
 * server's keep_alive_timeout (3 s on 18.16), but a busy event loop can run that timer late.
 */
const STALE_SOCKET_RE = /socket hang up|ECONNRESET/i;
const IDLE_SOCKET_TTL_MS = 1_500;
const STALE_SOCKET_RETRIES = 2;

/** Runs an idempotent request again when it met a stale kept-alive socket. */
async function retryStaleSocket<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await run();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? "";
      if (attempt >= STALE_SOCKET_RETRIES || !STALE_SOCKET_RE.test(`${code} ${(e as Error).message}`))
        throw e;
    }
  }
}

/**
 * The server answered the request with an error, so it did not commit it. Anything else (a timeout, a
 * connection lost after the request went out) leaves unknown whether an insert landed.
 */
export function answeredByServer(e: unknown): boolean {
  return e instanceof ClickHouseError;
}

export class HttpExec implements ChExec {
  readonly #client: ClickHouseClient;
  constructor(url: string, opts: { requestTimeoutMs?: number } = {}) {
    const u = new URL(url);
    const database = u.pathname.replace(/^\//, "") || undefined;
    this.#client = createClient({
      url: `${u.protocol}//${u.host}`,
      username: decodeURIComponent(u.username) || "default",
      password: decodeURIComponent(u.password),
      database,
      request_timeout: opts.requestTimeoutMs ?? 60_000,
      clickhouse_settings: SESSION_SETTINGS,
      // 18.16 answers gzip but the client's defaults changed over versions: ask for plain bodies.
      compression: { request: false, response: false },
      keep_alive: { idle_socket_ttl: IDLE_SOCKET_TTL_MS },
      // Every failure is thrown to its caller, which reports it or expects it (a replica losing the race to
      // add a column): the client's own ERROR lines would only say it a second time.
      log: { level: ClickHouseLogLevel.OFF },
    });
  }

  /** DDL (IF NOT EXISTS) and partition drops: safe to send again. */
  async command(sql: string): Promise<void> {
    await retryStaleSocket(() => this.#client.command({ query: sql }));
  }

  async rows<T>(sql: string): Promise<T[]> {
    return retryStaleSocket(async () => {
      const rs = await this.#client.query({ query: sql, format: "JSONEachRow" });
      return rs.json<T>();
    });
  }

  /** Not retried: an insert that may have landed is settled by the caller's id check on its retry. */
  async insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
    if (rows.length)
      await this.#client.insert({ table, values: rows as Record<string, unknown>[], format: "JSONEachRow" });
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}
