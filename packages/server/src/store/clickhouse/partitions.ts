import type { ChExec } from "./exec.js";
import { type Layout, localTable } from "./schema.js";
import { int, lit } from "./sql.js";

/**
 * Drops every monthly partition of `table` whose month ends by `before` (a month start, epoch ms), on
 * every node (partitions are shard-local), and returns how many rows went. With ON CLUSTER DDL the one
 * connected node sees every shard's parts through `cluster()` and drops each partition ON CLUSTER;
 * otherwise each given node lists and drops its own.
 */
export async function purgePartitions(
  nodes: readonly ChExec[],
  layout: Layout,
  table: string,
  before: number,
): Promise<number> {
  const d = new Date(before);
  // Partition ids are toYYYYMM(day): every month strictly before `before`'s month.
  const limit = d.getUTCFullYear() * 100 + d.getUTCMonth() + 1;
  const local = localTable(layout, table);
  const name = local.slice(layout.database.length + 1);
  const viaCluster = layout.cluster && layout.onClusterDdl ? layout.cluster : null;
  const parts = viaCluster ? `cluster(${lit(viaCluster)}, system, parts)` : "system.parts";
  const drop = viaCluster ? `${local} ON CLUSTER ${viaCluster}` : local;
  let rows = 0;
  for (const node of viaCluster ? nodes.slice(0, 1) : nodes) {
    const found = await node.rows<{ partition: string; n: string }>(
      `SELECT partition, sum(rows) AS n FROM ${parts}
       WHERE active AND database = ${lit(layout.database)} AND table = ${lit(name)}
       GROUP BY partition HAVING toUInt32(partition) < ${int(limit)}`,
    );
    for (const p of found) {
      await node.command(`ALTER TABLE ${drop} DROP PARTITION ${int(Number(p.partition))}`);
      rows += Number(p.n);
    }
  }
  return rows;
}
