import { totalTokens } from "../pricing/cost.js";
import { normalizeAnthropicMessages } from "./anthropic.js";
import { UsageError } from "./errors.js";
import { isObject, toolOf } from "./read.js";
import { emptyUsage, type NormalizedUsage, type ToolModelCall, USAGE_FIELDS } from "./types.js";

/**
 * The calls Anthropic's advisor tool (`advisor_20260301`) made on its advisor model inside a Messages
 * call: each is an `advisor_message` entry of `usage.iterations`, billed at the advisor model's rates and
 * left out of the top-level fields (which are the executor's). One call of the advisor's model, its
 * entries' tokens summed; null where the reply shows none. Entries whose usage does not read are a call
 * whose cost is unknown, not none.
 */
export function anthropicAdvisorCall(usage: unknown): ToolModelCall | null {
  const iterations = isObject(usage) ? usage.iterations : undefined;
  if (!Array.isArray(iterations)) return null;
  const entries = iterations.filter((e) => isObject(e) && e.type === "advisor_message");
  if (!entries.length) return null;
  const model = entries.map((e) => e.model).find((m) => typeof m === "string" && m !== "");
  const call = { api: "anthropic.messages" as const, model: (model as string | undefined) ?? null };
  const sum = emptyUsage();
  try {
    for (const entry of entries) add(sum, normalizeAnthropicMessages(entry));
  } catch (e) {
    if (e instanceof UsageError) return { ...call, usage: null, usage_raw: entries };
    throw e;
  }
  return { ...call, usage: sum, usage_raw: entries };
}

function add(sum: NormalizedUsage, u: NormalizedUsage): void {
  for (const f of USAGE_FIELDS) sum[f] += u[f];
}

/** The advisor tool (`advisor_…`) a Messages request offers, if it does. */
export function advisorToolOf(
  body: Record<string, unknown> | null | undefined,
): Record<string, unknown> | null {
  return toolOf(body, (type) => type.startsWith("advisor_"));
}

/** The advisor model a Messages request's advisor tool names, if it does. */
export function advisorToolModel(body: Record<string, unknown> | null | undefined): string | null {
  const model = advisorToolOf(body)?.model;
  return typeof model === "string" && model !== "" ? model : null;
}

/** One consultation's output, for an estimate: Anthropic says typically 1,400 to 1,800 tokens with thinking. */
const TYPICAL_ADVICE_TOKENS = 1_600;

/**
 * The advisor calls a stream cut before its final usage showed came back (its `advisor_tool_result` blocks):
 * billed all the same, so estimated, each reading the executor's transcript so far (`executor`: its usage
 * as far as the stream went) and writing a typical consultation's tokens, at the model the request's tool
 * names. Null when it showed none.
 */
export function estimatedAdvisorCall(
  consultations: number,
  executor: NormalizedUsage,
  model: string | null,
): ToolModelCall | null {
  if (consultations <= 0) return null;
  const usage = emptyUsage();
  usage.input_uncached_tokens = consultations * totalTokens(executor);
  usage.output_tokens = consultations * TYPICAL_ADVICE_TOKENS;
  const usage_raw = { estimated: true, consultations };
  return { api: "anthropic.messages", model, usage, usage_raw, estimated: true };
}
