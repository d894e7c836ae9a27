import { type Decimal, DecimalError, decimalFromNumber, parseDecimal } from "../money/decimal.js";
import { usdToNano } from "../money/nanousd.js";
import { BillingError } from "./errors.js";

const INT64_MAX = (1n << 63n) - 1n;

/** Billing exports' amounts → nano-USD with the money module's exact parsing; errors name the field. */
function toNano(parse: () => Decimal, text: string, field: string): bigint {
  let nano: bigint;
  try {
    nano = usdToNano(parse());
  } catch (e) {
    if (e instanceof DecimalError) throw new BillingError(field, e.message);
    throw e;
  }
  if (nano > INT64_MAX || nano < -INT64_MAX)
    throw new BillingError(field, `amount does not fit in int64 nano-USD: ${text}`);
  return nano;
}

/** A USD decimal string to nano-USD (half away from zero at the 9th decimal). */
export function usdDecimalToNano(text: string, field = "amount"): bigint {
  return toNano(() => parseDecimal(text), text, field);
}

/** A cents decimal string (Anthropic cost_report) to nano-USD. */
export function centsDecimalToNano(text: string, field = "amount"): bigint {
  return toNano(
    () => {
      const cents = parseDecimal(text);
      return { units: cents.units, scale: cents.scale + 2 };
    },
    text,
    field,
  );
}

/**
 * A USD amount that arrived as a JSON number (OpenAI Costs API). The number's shortest
 * round-trip decimal (`String(n)`) is what the provider wrote, so we parse that text exactly
 * instead of multiplying the float (1.005 * 1e9 = 1004999999.9999999).
 */
export function usdNumberToNano(value: number, field = "amount"): bigint {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new BillingError(field, `expected a finite USD number, got ${String(value)}`);
  }
  return toNano(() => decimalFromNumber(value), String(value), field);
}
