import type { CallRecord } from "@tollgate/core/fields";
import { COLUMNS } from "./columns.js";

type Column = (typeof COLUMNS)[number];
const COLUMN_OF = new Map<string, Column>(COLUMNS.map((c) => [c.name, c]));

/** A stored column's value as JSON text, as recordsJson writes the record's field (NULL as null). */
function jsonValueSql(c: Column): string {
  // A JSON column holds JSON.stringify's text: spliced as it is (it is valid JSON, and parsing it only to
  // write it again is the work saved); NULL stands for its empty value.
  if (c.empty) return `coalesce(${c.name}, '${JSON.stringify(c.empty())}')`;
  const text =
    c.kind === "varchar"
      ? `to_json(${c.name})::VARCHAR`
      : c.kind === "money"
        ? `'"' || ${c.name} || '"'` // int64 nano-USD as a decimal string, exactly
        : c.kind === "timestamp"
          ? `epoch_ms(${c.name})::VARCHAR`
          : `${c.name}::VARCHAR`; // integers as digits, booleans as true/false
  return `coalesce(${text}, 'null')`;
}

/**
 * SQL writing a record of the events table as the JSON array of its `fields`' values, the text recordsJson
 * writes for it as read back by `query`: one VARCHAR per row, built by DuckDB.
 */
export function jsonRowSql(fields: readonly (keyof CallRecord)[]): string {
  const values = fields.map((f) => {
    const c = COLUMN_OF.get(f);
    if (!c) throw new Error(`not a stored field: ${f}`);
    return jsonValueSql(c);
  });
  return `'[' || concat_ws(',', ${values.join(", ")}) || ']'`;
}
