/** Thrown on a billing export that cannot be read exactly (bad amount, unknown currency, wrong shape). */
export class BillingError extends Error {
  /** Dotted path of the offending field (e.g. `data[0].results[2].amount.value`). */
  readonly field: string;

  constructor(field: string, message: string) {
    super(field ? `${field}: ${message}` : message);
    this.name = "BillingError";
    this.field = field;
  }
}
