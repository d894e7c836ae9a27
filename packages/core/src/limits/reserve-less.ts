import type { Api } from "../usage/types.js";
import { choicesOf, outputCapFields, outputCapOf, type WorstCase } from "./estimate.js";

/**
 * What decides the worst case of a call no output cap bounds (worstCaseUsage), so a refusal tells what
 * would make it smaller instead of a max_tokens that plays no part.
 */
const WITHOUT_OUTPUT_CAP: Partial<Record<Api, string>> = {
  "openai.embeddings":
    "An embeddings call reserves its input's bytes as tokens (max_tokens plays no part): less input a call reserves less.",
  "openai.images":
    "An image call reserves each image it asks for at high quality by its size (max_tokens plays no part): " +
    "fewer (n) or smaller (size) images, or fewer partial_images, reserve less.",
  "openai.speech":
    "A speech call reserves by the length of its text (input, instructions; a speed under 1 makes it longer), " +
    "not by max_tokens: a shorter text reserves less.",
  "openai.transcriptions":
    "A transcription's audio is not heard before it is sent, and no max_tokens bounds it: a model billed by " +
    "tokens reserves its whole context window, one billed by the audio's length the longest its file can play " +
    "(a smaller file reserves less).",
  "openai.realtime":
    "A realtime response reserves its model's whole context window as output (its session's " +
    "max_response_output_tokens is not read).",
};

/**
 * How a call a budget refused could reserve less, for a refusal that a smaller call would pass: a lower
 * output cap than the one it set, one where it set none, and for calls no output cap bounds, what does.
 */
export function reserveLessHint(api: Api, body: Record<string, unknown> | null, wc: WorstCase): string {
  const fields = outputCapFields(api);
  if (!fields.length) return WITHOUT_OUTPUT_CAP[api] ?? "A smaller call reserves less.";
  const choices = choicesOf(api, body);
  const perChoice =
    choices.count > 1 ? ` Each of its ${choices.count} choices (${choices.field}) reserves as much.` : "";
  const cap = outputCapOf(api, body);
  if (cap)
    return `This call's ${cap.field} of ${cap.tokens} is reserved whole as output: a lower one reserves less.${perChoice}`;
  const set = `Set ${fields.join(" or ")} to reserve less: without one,`;
  if (wc.outputFrom === "context_window")
    return `${set} a call reserves its model's whole context window as output.${perChoice}`;
  if (wc.outputFrom === "default")
    return `${set} a call of a model whose context window is unknown reserves ${wc.maxOutput} output tokens.${perChoice}`;
  // The API's own default cap (legacy completions: 16 tokens): its prompt is most of its worst case.
  return `Without ${fields.join(" or ")} a call reserves the API's default of ${wc.maxOutput} output tokens: a shorter prompt reserves less.${perChoice}`;
}
