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
      // Literal, not derived from COLUMNS: a migration must create the same table forever. New columns
      // come as new migrations (ALTER TABLE … ADD COLUMN), appended to COLUMNS in the same order.
      `CREATE TABLE events (
         event_id VARCHAR NOT NULL,
         workspace_id VARCHAR NOT NULL,
         ts_start TIMESTAMP NOT NULL,
         ts_end TIMESTAMP,
         latency_ms INTEGER,
         ttft_ms INTEGER,
         trace_id VARCHAR,
         span_id VARCHAR,
         parent_span_id VARCHAR,
         kind VARCHAR NOT NULL,
         provider VARCHAR NOT NULL,
         api VARCHAR,
         model_requested VARCHAR,
         model VARCHAR NOT NULL,
         stream BOOLEAN NOT NULL,
         service_tier VARCHAR,
         batch BOOLEAN NOT NULL,
         status VARCHAR NOT NULL,
         http_status INTEGER,
         error_type VARCHAR,
         attempt INTEGER NOT NULL,
         request_id VARCHAR,
         input_uncached_tokens BIGINT NOT NULL,
         cache_read_tokens BIGINT NOT NULL,
         cache_write_5m_tokens BIGINT NOT NULL,
         cache_write_1h_tokens BIGINT NOT NULL,
         output_tokens BIGINT NOT NULL,
         reasoning_tokens BIGINT NOT NULL,
         input_audio_tokens BIGINT NOT NULL,
         output_audio_tokens BIGINT NOT NULL,
         image_tokens BIGINT NOT NULL,
         usage_raw VARCHAR,
         cost_nanousd BIGINT NOT NULL,
         cost_input_uncached_nanousd BIGINT NOT NULL,
         cost_cache_read_nanousd BIGINT NOT NULL,
         cost_cache_write_5m_nanousd BIGINT NOT NULL,
         cost_cache_write_1h_nanousd BIGINT NOT NULL,
         cost_output_nanousd BIGINT NOT NULL,
         cost_input_audio_nanousd BIGINT NOT NULL,
         cost_output_audio_nanousd BIGINT NOT NULL,
         cost_image_nanousd BIGINT NOT NULL,
         cost_requests_nanousd BIGINT NOT NULL,
         cost_source VARCHAR NOT NULL,
         price_ref VARCHAR NOT NULL,
         priced BOOLEAN NOT NULL,
         user_id VARCHAR,
         customer_id VARCHAR,
         feature VARCHAR,
         deployment VARCHAR,
         prompt_version VARCHAR,
         agent_run_id VARCHAR,
         agent_type VARCHAR,
         session_id VARCHAR,
         route VARCHAR,
         variant VARCHAR,
         tags VARCHAR,
         metadata VARCHAR,
         data_mode VARCHAR NOT NULL,
         schema_version INTEGER NOT NULL)`,
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
  {
    version: 3,
    sql: [
      // The gateway key a call came through: key-scoped budgets are rebuilt from it after a restart.
      "ALTER TABLE events ADD COLUMN key_id VARCHAR",
      // Budgets, rate limits and agent ceilings set through the API (the limits file is not stored).
      `CREATE TABLE policies (
         workspace_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, id VARCHAR NOT NULL, spec VARCHAR NOT NULL,
         updated_at TIMESTAMP NOT NULL, updated_by VARCHAR NOT NULL, PRIMARY KEY (workspace_id, kind, id))`,
      // Every change of a policy: who, when, what it was before and after.
      `CREATE TABLE policy_audit (
         ts TIMESTAMP NOT NULL, workspace_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, id VARCHAR NOT NULL,
         action VARCHAR NOT NULL, actor VARCHAR NOT NULL, before VARCHAR, after VARCHAR)`,
      // Budget state transitions, run kills and unkills, limit-backend outages: for alerts and reports.
      `CREATE TABLE limit_events (
         ts TIMESTAMP NOT NULL, workspace_id VARCHAR NOT NULL, type VARCHAR NOT NULL, subject VARCHAR NOT NULL,
         bucket VARCHAR, from_state VARCHAR, to_state VARCHAR, spend_nanousd BIGINT, limit_nanousd BIGINT,
         event_id VARCHAR, request_id VARCHAR, detail VARCHAR)`,
    ],
  },
  {
    version: 4,
    sql: [
      // Daily sums per attribution of the calls purged from events (retention): what long-range reports
      // read for those days. Nullable attribution is stored as '' so it can be part of the key.
      `CREATE TABLE daily_summary (
         workspace_id VARCHAR NOT NULL, day DATE NOT NULL, deployment VARCHAR NOT NULL, data_mode VARCHAR NOT NULL,
         feature VARCHAR NOT NULL, customer_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL, model VARCHAR NOT NULL,
         prompt_version VARCHAR NOT NULL, provider VARCHAR NOT NULL, agent_type VARCHAR NOT NULL, kind VARCHAR NOT NULL,
         calls BIGINT NOT NULL, requests BIGINT NOT NULL, ok_requests BIGINT NOT NULL, cost_nanousd HUGEINT NOT NULL,
         input_tokens HUGEINT NOT NULL, output_tokens HUGEINT NOT NULL, unpriced_calls BIGINT NOT NULL,
         PRIMARY KEY (workspace_id, day, deployment, data_mode, feature, customer_id, user_id, model,
                      prompt_version, provider, agent_type, kind))`,
      // How far back each kind of data goes after purges (no row: everything is kept).
      `CREATE TABLE retention (
         workspace_id VARCHAR PRIMARY KEY, raw_available_from TIMESTAMP, summary_available_from DATE)`,
    ],
  },
  {
    version: 5,
    sql: [
      // Model calls of closed UTC days summed per segment key (no user): what variance, first-seen and
      // segment rollups read for whole past days instead of the raw calls ('' stands for none).
      `CREATE TABLE segment_days (
         workspace_id VARCHAR NOT NULL, day DATE NOT NULL, deployment VARCHAR NOT NULL, data_mode VARCHAR NOT NULL,
         feature VARCHAR NOT NULL, customer_id VARCHAR NOT NULL, model VARCHAR NOT NULL, prompt_version VARCHAR NOT NULL,
         provider VARCHAR NOT NULL, agent_type VARCHAR NOT NULL,
         requests BIGINT NOT NULL, ok_requests BIGINT NOT NULL, cost_nanousd HUGEINT NOT NULL,
         retry_cost_nanousd HUGEINT NOT NULL, error_cost_nanousd HUGEINT NOT NULL, first_ms BIGINT NOT NULL,
         PRIMARY KEY (workspace_id, day, deployment, data_mode, feature, customer_id, model, prompt_version,
                      provider, agent_type))`,
      // Model calls of closed UTC days summed per user: what the user-day rollup reads for whole past days.
      `CREATE TABLE user_days (
         workspace_id VARCHAR NOT NULL, day DATE NOT NULL, deployment VARCHAR NOT NULL, data_mode VARCHAR NOT NULL,
         user_id VARCHAR NOT NULL, cost_nanousd HUGEINT NOT NULL, requests BIGINT NOT NULL,
         PRIMARY KEY (workspace_id, day, deployment, data_mode, user_id))`,
      // segment_days and user_days hold every day before closed_before (one row, id 1; none: nothing closed yet).
      "CREATE TABLE segment_days_state (id INTEGER PRIMARY KEY, closed_before DATE NOT NULL)",
    ],
  },
  {
    version: 6,
    // Server-side tool calls billed per call (web and file searches) and what they cost. Calls stored
    // before had none counted: 0. (DuckDB adds no NOT NULL column; the appender always writes a value.)
    sql: [
      "ALTER TABLE events ADD COLUMN web_search_requests BIGINT DEFAULT 0",
      "ALTER TABLE events ADD COLUMN file_search_requests BIGINT DEFAULT 0",
      "ALTER TABLE events ADD COLUMN cost_tool_calls_nanousd BIGINT DEFAULT 0",
    ],
  },
  {
    version: 7,
    // The web searches of OpenAI's web_search_preview tool (priced apart). Calls stored before: none counted.
    sql: ["ALTER TABLE events ADD COLUMN web_search_preview_requests BIGINT DEFAULT 0"],
  },
  {
    version: 8,
    // Cached audio and image input, priced apart from cached text. Calls stored before had them in
    // cache_read_tokens: 0 here.
    sql: [
      "ALTER TABLE events ADD COLUMN cache_audio_read_tokens BIGINT DEFAULT 0",
      "ALTER TABLE events ADD COLUMN cache_image_read_tokens BIGINT DEFAULT 0",
    ],
  },
  {
    version: 9,
    // Image output tokens (of OpenAI's Images API), priced apart from text output. Calls stored before: 0.
    sql: ["ALTER TABLE events ADD COLUMN output_image_tokens BIGINT DEFAULT 0"],
  },
  {
    version: 10,
    // Milliseconds of input audio, for models billed by the hour of it (whisper-1). Calls stored before: 0.
    // The call a record was made within (a hosted tool's model call). Calls stored before: none.
    sql: [
      "ALTER TABLE events ADD COLUMN input_audio_ms BIGINT DEFAULT 0",
      "ALTER TABLE events ADD COLUMN parent_event_id VARCHAR",
    ],
  },
  {
    version: 11,
    // Characters of input text, for models billed by the character (tts-1). Calls stored before: 0.
    sql: ["ALTER TABLE events ADD COLUMN input_characters BIGINT DEFAULT 0"],
  },
  {
    version: 12,
    // Closed days were summed counting a hosted tool's model call as a request (and a success) of its own:
    // summed again from the raw calls when the store opens (they cover every day these tables hold).
    sql: ["DELETE FROM segment_days", "DELETE FROM user_days", "DELETE FROM segment_days_state"],
  },
  {
    version: 13,
    // Closed days were summed from model calls only: a tool or agent record's reported cost, counted by
    // `spend`, was missing from the rollups. Summed again from the raw calls when the store opens.
    sql: ["DELETE FROM segment_days", "DELETE FROM user_days", "DELETE FROM segment_days_state"],
  },
];
