/**
 * A row's key in text for people (the CLI's tables, the variance narrative): none (null) and empty text
 * ("", the provider and model of a tool's record, which name none) both read `(none)`, not a blank.
 * JSON answers keep them as they are.
 */
export function keyLabel(key: string | null): string {
  return key === null || key === "" ? "(none)" : key;
}
