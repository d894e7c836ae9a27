// Heap snapshots (.heapsnapshot, as V8 writes them) told apart by what they hold: objects counted by
// constructor, closures by function, arrays and the rest by kind (strings are one kind, whatever they say),
// so that two snapshots of one process show what grew between them.
import { readFileSync } from "node:fs";

/** Kinds whose node names are their contents, not a constructor: counted under the kind alone. */
const BY_KIND = new Set([
  "string",
  "concatenated string",
  "sliced string",
  "number",
  "bigint",
  "code",
  "hidden",
]);

/** Map of "kind name" -> { count, bytes } (bytes: the nodes' own sizes) of one snapshot file. */
export function countByConstructor(path) {
  const snap = JSON.parse(readFileSync(path, "utf8"));
  const fields = snap.snapshot.meta.node_fields;
  const kinds = snap.snapshot.meta.node_types[fields.indexOf("type")];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const out = new Map();
  const { nodes, strings } = snap;
  for (let i = 0; i < nodes.length; i += width) {
    const kind = kinds[nodes[i + typeAt]];
    const key = BY_KIND.has(kind) ? `(${kind})` : `${kind} ${strings[nodes[i + nameAt]]}`;
    const c = out.get(key) ?? { count: 0, bytes: 0 };
    c.count++;
    c.bytes += nodes[i + sizeAt];
    out.set(key, c);
  }
  return out;
}

/** What grew most from snapshot `a` to `b`, by count: the top `n` rows of { key, count, bytes } deltas. */
export function growth(a, b, n = 25) {
  const rows = [];
  for (const [key, after] of b) {
    const before = a.get(key) ?? { count: 0, bytes: 0 };
    rows.push({
      key,
      count: after.count - before.count,
      bytes: after.bytes - before.bytes,
      after: after.count,
    });
  }
  return rows.sort((x, y) => y.count - x.count).slice(0, n);
}
