import { toolOf } from "./read.js";

/**
 * Parameters only the GPT image models take (DALL·E takes none of them): a generation that sends one runs
 * on a GPT image model, whatever model it names.
 */
const GPT_IMAGE_ONLY = [
  "background",
  "moderation",
  "output_compression",
  "output_format",
  "partial_images",
  "stream",
  "input_fidelity",
];
const GPT_IMAGE_QUALITIES: ReadonlySet<unknown> = new Set(["low", "medium", "high"]);

/** The GPT image model OpenAI runs an edit on when it names none (the API reference's default). */
export const DEFAULT_GPT_IMAGE_MODEL = "gpt-image-1.5";

/**
 * The model an Images API request that names none runs on, as OpenAI documents it: an edit on
 * gpt-image-1.5; a generation on dall-e-2, unless it sends a parameter only the GPT image models take,
 * then (undocumented) on the GPT image default an edit has. The reply names no model, so this is what
 * prices and limits such a call; without it the call would be unpriced, and held nothing.
 */
export function defaultImageModel(
  operation: "generation" | "edit",
  body: Record<string, unknown> | null,
): string {
  if (operation === "edit") return DEFAULT_GPT_IMAGE_MODEL;
  const gptOnly =
    GPT_IMAGE_ONLY.some((k) => body?.[k] !== undefined && body[k] !== null) ||
    GPT_IMAGE_QUALITIES.has(body?.quality);
  return gptOnly ? DEFAULT_GPT_IMAGE_MODEL : "dall-e-2";
}

/** The model the Responses API's image generation tool runs on when it names none (the reference's default). */
export const DEFAULT_IMAGE_TOOL_MODEL = "gpt-image-1";

/** The image generation tool a Responses request offers (or a response repeats in its `tools`), if any. */
export function imageToolOf(
  body: Record<string, unknown> | null | undefined,
): Record<string, unknown> | null {
  return toolOf(body, (type) => type === "image_generation");
}

/** The image model a request's (or response's) image generation tool names: null where it names none. */
export function imageToolModel(body: Record<string, unknown> | null | undefined): string | null {
  const model = imageToolOf(body)?.model;
  return typeof model === "string" && model !== "" ? model : null;
}
