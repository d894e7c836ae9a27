import { BackendUnreachableError, BackendUrlError } from "../../backend-error.js";
import { type IdClaims, LocalClaims } from "./claims.js";
import { type ChExec, HttpExec } from "./exec.js";
import { addMissingColumns, type Layout, tablesDdl, viewsDdl } from "./schema.js";
import { ClickHouseStore } from "./store.js";

export interface ClickHouseOptions {
  /** http(s)://user:pass@host:8123/<database> (database default "tollgate"). */
  url: string;
  /** Cluster name: shard-local tables under Distributed ones (TOLLGATE_CLICKHOUSE_CLUSTER). */
  cluster?: string | null;
  /**
   * Every node's URL, when the cluster's DDL is run by Tollgate node by node (no Keeper); without it a
   * cluster's DDL goes through ON CLUSTER.
   */
  nodes?: readonly string[];
  /** Redis for id claims shared by replicas; without it claims are local to this process. */
  redisUrl?: string | null;
  /**
   * False for a second connection of a process whose first one made the schema and the default workspace
   * (the append thread's): on a cluster its DDL would otherwise queue ON CLUSTER once more.
   */
  createSchema?: boolean;
}

const DATABASE_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * A ClickHouse URL as its HTTP client takes it, or a BackendUrlError saying the form (the value is not
 * repeated: it may hold a password). Unchecked, `localhost:8123` (a URL whose scheme is "localhost:") or
 * `notaurl` stopped the command with the client's TypeError and its stack.
 */
function clickHouseUrl(url: string, from: string): URL {
  const u = URL.canParse(url) ? new URL(url) : null;
  if (u?.protocol !== "http:" && u?.protocol !== "https:")
    throw new BackendUrlError(
      `${from} must be an http(s) URL, http(s)://[user:password@]host:port/<database> (e.g. http://localhost:8123/tollgate)`,
    );
  return u;
}

/** Connects, creates the schema where it is missing (unless told not to), and returns the store. */
export async function openClickHouse(
  opts: ClickHouseOptions,
  exec?: (url: string) => ChExec,
): Promise<ClickHouseStore> {
  const u = clickHouseUrl(opts.url, "--clickhouse / TOLLGATE_CLICKHOUSE_URL");
  for (const node of opts.nodes ?? []) clickHouseUrl(node, "TOLLGATE_CLICKHOUSE_NODES");
  const database = u.pathname.replace(/^\//, "") || "tollgate";
  if (!DATABASE_RE.test(database))
    throw new BackendUrlError(
      `invalid ClickHouse database name ${JSON.stringify(database)} (--clickhouse / TOLLGATE_CLICKHOUSE_URL): letters, digits and _, not starting with a digit`,
    );
  // Connect without a database: it may not exist yet.
  const connect = exec ?? ((url: string) => new HttpExec(url));
  const strip = (url: string) => {
    const x = new URL(url);
    x.pathname = "/";
    return x.toString();
  };
  const ch = connect(strip(opts.url));
  const nodes = opts.nodes?.length ? opts.nodes.map((n) => connect(strip(n))) : [ch];
  const layout: Layout = {
    database,
    cluster: opts.cluster ?? null,
    onClusterDdl: !!opts.cluster && !opts.nodes?.length,
  };
  let claims: IdClaims | null = null;
  try {
    const createSchema = opts.createSchema !== false;
    if (createSchema)
      for (const node of layout.onClusterDdl ? [ch] : nodes) {
        for (const sql of tablesDdl(layout)) await node.command(sql);
        await addMissingColumns(node, layout);
        for (const sql of viewsDdl(layout)) await node.command(sql);
      }
    claims = opts.redisUrl
      ? await (await import("./redis-claims.js")).RedisClaims.connect(opts.redisUrl)
      : new LocalClaims();
    const store = new ClickHouseStore(ch, layout, claims, nodes);
    if (createSchema) await store.ensureWorkspace("default");
    return store;
  } catch (e) {
    await claims?.close();
    await Promise.all([...new Set([ch, ...nodes])].map((n) => n.close().catch(() => {})));
    if (e instanceof BackendUnreachableError) throw e; // its Redis, which names itself
    throw new BackendUnreachableError(
      `ClickHouse at ${u.host} (--clickhouse / TOLLGATE_CLICKHOUSE_URL): ${(e as Error).message}`,
    );
  }
}
