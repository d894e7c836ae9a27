// Readers for provider billing exports, for invoice reconciliation against the call record.

export {
  anthropicCostResultToNano,
  normalizeAnthropicUsageReportResult,
  readAnthropicCostReport,
  readAnthropicUsageReport,
} from "./anthropic.js";
export { centsDecimalToNano, usdDecimalToNano, usdNumberToNano } from "./decimal.js";
export { BillingError } from "./errors.js";
export {
  normalizeOpenAIUsageCompletionsResult,
  normalizeOpenAIUsageEmbeddingsResult,
  openAICostResultToNano,
  readOpenAICostsPage,
  readOpenAIUsagePage,
} from "./openai.js";
export type { BucketResult, CostRow, UsageRow } from "./pages.js";
export { bucketResults } from "./pages.js";
