// Types for clickhouse-config.mjs (imported by the TypeScript test harness packages/server/test/clickhouse-server.ts).

export declare const CLICKHOUSE_INSTALL_HINT: string;

export interface ClickHouseServerBinary {
  command: string;
  args: string[];
}

export interface ClickHouseClusterShard {
  /** Defaults to 127.0.0.1. */
  host?: string;
  tcpPort: number;
}

export interface ClickHouseConfigOptions {
  /** The server's own directory: config.xml, users.xml, data/ and log/ go here. */
  dir: string;
  httpPort: number;
  tcpPort: number;
  interserverPort: number;
  /** A `remote_servers` cluster of one-replica shards. */
  cluster?: { name: string; shards: ClickHouseClusterShard[] } | null;
  /** A ZooKeeper (host defaults to 127.0.0.1) and the distributed DDL queue, for `ON CLUSTER` DDL. */
  zookeeper?: { host?: string; port: number } | null;
  /** The server's {shard} and {replica} macros (written only with `zookeeper`). */
  macros?: { shard: string; replica: string } | null;
}

export interface ClickHouseConfigFiles {
  configPath: string;
  usersPath: string;
  dataDir: string;
  serverLog: string;
  errorLog: string;
}

export declare function findClickHouseServer(): ClickHouseServerBinary | null;
export declare function renderClickHouseConfig(opts: ClickHouseConfigOptions): string;
export declare function writeClickHouseConfig(opts: ClickHouseConfigOptions): ClickHouseConfigFiles;
export declare function clickHouseServerCommand(
  server: ClickHouseServerBinary,
  configPath: string,
): ClickHouseServerBinary;
export declare function clickHouseAnswers(httpUrl: string, timeoutMs?: number): Promise<boolean>;
export declare function tailFile(path: string, maxLines?: number): string;
