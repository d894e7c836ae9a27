/**
 * @tollgate/sdk — what apps embed to attribute LLM cost without a gateway: client wrappers that record
 * every call, attribution and trace scopes, the in-process agent-run guard, and the batching exporter
 * that sends records to a Tollgate server (`POST /v1/events`), which prices them.
 */
export { type CallRecordInput, SCHEMA_VERSION, uuidv7 } from "@tollgate/core";
export {
  AgentRun,
  AgentRunHeldError,
  AgentRunKilledError,
  type AgentRunOptions,
  agentRun,
  currentAgentRun,
  type LlmCallOptions,
} from "./agent-run.js";
export type { Attribution } from "./attribution.js";
export { withAttribution } from "./context.js";
export { Exporter, type ExporterOptions, type ExporterStats } from "./exporter.js";
export type { CostEstimator, RecordSink } from "./instrument/call.js";
export { configure, defaultExporter, flush, shutdown, type WrapOptions } from "./setup.js";
export { type TracedOptions, traced } from "./traced.js";
export { wrapAnthropic } from "./wrap-anthropic.js";
export { wrapOpenAI } from "./wrap-openai.js";
export { wrapOpenAIRealtime } from "./wrap-openai-realtime.js";
