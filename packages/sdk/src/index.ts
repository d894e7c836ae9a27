/**
 * @tollgate/sdk — what apps embed: the record shape apps send to `POST /v1/events`, the id generator
 * that makes those sends idempotent, and the in-process agent-run guard. Client wrappers and the
 * exporter come next (issue 5).
 */
export { type CallRecordInput, SCHEMA_VERSION, uuidv7 } from "@tollgate/core";
export {
  AgentRun,
  AgentRunKilledError,
  type AgentRunOptions,
  agentRun,
  currentAgentRun,
  type LlmCallOptions,
} from "./agent-run.js";
