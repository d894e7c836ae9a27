import { parseDecimal } from "../money/decimal.js";
import type { PriceRates } from "./rates.js";

/**
 * OpenAI's speech models billed by the character of text, which genai-prices does not list: tts-1 at $15
 * and tts-1-hd at $30 per million characters (OpenAI's pricing page, and Azure OpenAI's), their dated
 * snapshots too (`tts-1-1106`, `tts-1-hd-1106`).
 */
const PER_MILLION_CHARACTERS: Record<string, PriceRates> = {
  "tts-1": { input_mchars: parseDecimal("15") },
  "tts-1-hd": { input_mchars: parseDecimal("30") },
};

/** The providers (genai-prices ids) that sell OpenAI's speech models at OpenAI's prices. */
const SPEECH_PROVIDERS: ReadonlySet<string> = new Set(["openai", "azure"]);

/** The id and rates of a speech model billed by the character (by genai-prices provider id), or null. */
export function characterPricedModel(
  providerId: string,
  model: string,
): { id: string; rates: PriceRates } | null {
  if (!SPEECH_PROVIDERS.has(providerId)) return null;
  const id = model.toLowerCase().replace(/-\d{4}$/, "");
  const rates = PER_MILLION_CHARACTERS[id];
  return rates ? { id, rates } : null;
}

/**
 * gpt-4o-mini-tts's dated snapshots (`gpt-4o-mini-tts-2025-03-20`, `-2025-12-15`), billed as it is (OpenAI
 * lists no prices of their own) but matched by genai-prices by its exact name only: the name to look up.
 */
export function speechSnapshotBase(providerId: string, model: string): string | null {
  const m = /^(gpt-4o-mini-tts)-\d{4}-\d{2}-\d{2}$/i.exec(model);
  return SPEECH_PROVIDERS.has(providerId) && m ? m[1]!.toLowerCase() : null;
}
