// Types for zookeeper.mjs (imported by the TypeScript test harness packages/server/test/clickhouse-server.ts).

export declare const ZOOKEEPER_INSTALL_HINT: string;

export declare function findZooKeeper(): { java: string; classpath: string } | { missing: string };
export declare function zooKeeperCommand(port: number, word: string, timeoutMs?: number): Promise<string>;
export declare function zooKeeperServing(port: number, timeoutMs?: number): Promise<boolean>;

export interface RunningZooKeeper {
  host: string;
  port: number;
  /** host:port */
  address: string;
  logPath: string;
  pid: number | undefined;
  exited(): boolean;
  /** SIGKILL without waiting (for process "exit" handlers). */
  kill(): void;
  /** SIGKILL, resolved once the process has exited. */
  stop(): Promise<void>;
}

export declare function startZooKeeper(opts: { dir: string; port?: number }): Promise<RunningZooKeeper>;
