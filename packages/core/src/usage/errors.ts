/**
 * Thrown when a provider's usage object cannot be normalized. Callers record the call with
 * the raw usage and the message instead of guessing numbers (a wrong count is a wrong bill).
 */
export class UsageError extends Error {
  /** Dotted path of the offending field in the provider's usage object (e.g. `prompt_tokens_details.cached_tokens`). */
  readonly field: string;

  constructor(field: string, message: string) {
    super(field ? `${field}: ${message}` : message);
    this.name = "UsageError";
    this.field = field;
  }
}
