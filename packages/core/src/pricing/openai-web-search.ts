import { parseDecimal } from "../money/decimal.js";
import type { PriceRates } from "./rates.js";

/**
 * OpenAI bills its older `web_search_preview` tool by model: $25 per thousand calls on its non-reasoning
 * models, whose search content tokens are free (their usage leaves them out), and `web_search`'s $10 on
 * reasoning models (o-series, gpt-5), whose content tokens are billed as input. genai-prices has only the
 * $10. These are its OpenAI models with web search that do not reason.
 */
const NON_REASONING_WITH_WEB_SEARCH: ReadonlySet<string> = new Set([
  "gpt-4o",
  "gpt-4o-mini",
  "gpt-4.1",
  "gpt-4.1-mini",
]);

const PREVIEW_ON_NON_REASONING: PriceRates = { web_search_previews_kcount: parseDecimal("25") };

/** The rates Tollgate adds to a genai-prices model's (by genai-prices provider and model id), if any. */
export function addedRates(providerId: string, modelId: string): PriceRates | null {
  return providerId === "openai" && NON_REASONING_WITH_WEB_SEARCH.has(modelId)
    ? PREVIEW_ON_NON_REASONING
    : null;
}
