import { COLUMNS } from "./columns.js";

/**
 * Ordered schema migrations. Each runs once, in a transaction, and is recorded in schema_migrations;
 * new versions are appended, never edited, so existing data dirs move forward on start.
 */
export const MIGRATIONS: readonly { version: number; sql: string[] }[] = [
  {
    version: 1,
    sql: [
      `CREATE TABLE workspaces (id VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)`,
      `INSERT INTO workspaces (id) VALUES ('default')`,
      `CREATE TABLE api_keys (
         id VARCHAR PRIMARY KEY, workspace_id VARCHAR NOT NULL, role VARCHAR NOT NULL, hash VARCHAR NOT NULL UNIQUE,
         label VARCHAR, created_at TIMESTAMP NOT NULL, revoked_at TIMESTAMP)`,
      `CREATE TABLE events (${COLUMNS.map((c) => `${c.name} ${c.sql}`).join(", ")})`,
      // Idempotency: every stored (workspace, event_id), the id as a 16-byte UUID, under a primary key.
      // Checking a batch here is far cheaper than keeping a primary key on the ~55-column events table.
      "CREATE TABLE event_ids (workspace_id VARCHAR NOT NULL, event_id UUID NOT NULL, PRIMARY KEY (workspace_id, event_id))",
    ],
  },
  {
    version: 2,
    // Gateway keys carry default attribution (customer, feature, …) as JSON.
    sql: ["ALTER TABLE api_keys ADD COLUMN defaults VARCHAR"],
  },
];
