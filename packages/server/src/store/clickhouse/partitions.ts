import type { ChExec } from "./exec.js";
import { type Layout, localTable } from "./schema.js";
import { int, lit } from "./sql.js";

/**
 * Drops every monthly partition of `table` whose month ends by `before` (a month start, epoch ms), on
 * every node (partitions are shard-local), and returns how many rows went.
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
  let rows = 0;
  for (const node of nodes) {
    const parts = await node.rows<{ partition: string; n: string }>(
      `SELECT partition, sum(rows) AS n FROM system.parts
       WHERE active AND database = ${lit(layout.database)} AND table = ${lit(name)}
       GROUP BY partition HAVING toUInt32(partition) < ${int(limit)}`,
    );
    for (const p of parts) {
      await node.command(`ALTER TABLE ${local} DROP PARTITION ${int(Number(p.partition))}`);
      rows += Number(p.n);
    }
  }
  return rows;
}
