/**
 * Thrown when a request's field cannot be read as its API reads it (a Gemini setting sent under both its
 * names), so its worst case cannot be told: the field's path and why.
 */
export class RequestFieldError extends Error {
  /** Dotted path of the field in the request body (e.g. `generation_config.max_output_tokens`). */
  readonly field: string;

  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = "RequestFieldError";
    this.field = field;
  }
}
