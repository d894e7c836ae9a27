// The image generation tool's images where a reply does not report the tool's usage (replies from before
// OpenAI reported `tool_usage`, providers that leave it out): estimated from the images it shows, so that
// an image that was billed is never missing from the spend.
import { isObject, type JsonObject } from "./read.js";
import { emptyUsage, type ToolModelCall } from "./types.js";

/**
 * Output image tokens of one GPT image by quality, for a square, a portrait and a landscape image (OpenAI's
 * image generation guide, gpt-image-1's table).
 */
const IMAGE_OUTPUT_TOKENS: Record<string, readonly [number, number, number]> = {
  low: [272, 408, 400],
  medium: [1056, 1584, 1568],
  high: [4160, 6240, 6208],
};
const SIZES = ["1024x1024", "1024x1536", "1536x1024"];

/** An image's output tokens by its quality and size; one not in the table at the most its quality (else high) takes. */
export function imageOutputTokens(quality: unknown, size: unknown): number {
  const row = IMAGE_OUTPUT_TOKENS[typeof quality === "string" ? quality : ""] ?? IMAGE_OUTPUT_TOKENS.high!;
  const at = SIZES.indexOf(typeof size === "string" ? size : "");
  return at === -1 ? Math.max(...row) : row[at]!;
}

/**
 * The tool's call estimated from a reply's `output`: each `image_generation_call` item that made an image
 * (completed, or carrying its result) at its quality and size's output tokens, its revised prompt at ~4
 * characters a token as input. Null when the reply shows no image made.
 */
export function estimatedImageGeneration(output: unknown, model: string | null): ToolModelCall | null {
  if (!Array.isArray(output)) return null;
  const usage = emptyUsage();
  let images = 0;
  for (const item of output) {
    if (!isObject(item) || item.type !== "image_generation_call") continue;
    if (item.status !== "completed" && typeof item.result !== "string") continue;
    images++;
    usage.output_tokens += imageOutputTokens(item.quality, item.size);
    const prompt = item.revised_prompt;
    if (typeof prompt === "string") usage.input_uncached_tokens += Math.ceil(prompt.length / 4);
  }
  if (images === 0) return null;
  usage.output_image_tokens = usage.output_tokens;
  return { api: "openai.images", model, usage, usage_raw: { estimated: true, images }, estimated: true };
}

/**
 * The images a Responses stream shows made as it goes (its `response.output_item.done` image generation
 * items, without their bytes), for one cut off before its usage came: the images were billed all the same.
 */
export function streamedImages(): { push(event: JsonObject): void; seen(): readonly JsonObject[] } {
  const images: JsonObject[] = [];
  return {
    push(event) {
      const item = event.item;
      if (
        event.type !== "response.output_item.done" ||
        !isObject(item) ||
        item.type !== "image_generation_call"
      )
        return;
      const { type, status, quality, size, revised_prompt, result } = item;
      images.push({
        type,
        status,
        quality,
        size,
        revised_prompt,
        result: typeof result === "string" ? "" : null,
      });
    },
    seen: () => images,
  };
}
