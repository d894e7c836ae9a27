/** The statuses an upstream refuses a request parameter it does not know with (400; 422: pydantic's servers). */
const REFUSAL_STATUSES = new Set([400, 422]);

/**
 * Whether an answer of this status may refuse the `stream_options` added to an OpenAI stream to ask for
 * its usage: its error text says (refusesStreamOptions).
 */
export function mayRefuseStreamOptions(status: number): boolean {
  return REFUSAL_STATUSES.has(status);
}

/**
 * Whether an error answer refuses the `stream_options` added to an OpenAI stream to ask for its usage
 * (Azure OpenAI before api-version 2024-09-01-preview: 400 "Unrecognized request argument supplied:
 * stream_options"; a compatible server that forbids unknown fields: 422 naming it). `text`: its error's
 * text (the start of its body, or an SDK error's message).
 */
export function refusesStreamOptions(status: number, text: string): boolean {
  return mayRefuseStreamOptions(status) && /\bstream_options\b/.test(text);
}
