import { BillingError } from "./errors.js";

/** Nano-units per unit: 1 USD = 10^9 nano-USD, 1 cent = 10^7 nano-USD. */
const USD_SCALE = 9;
const CENTS_SCALE = 7;
const INT64_MAX = (1n << 63n) - 1n;
// Exponents beyond this are not money; refusing them also keeps 10n ** exponent cheap.
const MAX_EXPONENT = 400;
// Sign, integer digits, fraction digits, exponent. Only run on short billing strings, never per token.
const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * Exact decimal string → integer count of 10^-scale units, with BigInt arithmetic (no float ever
 * touches the value). Rounds half away from zero: half-up for charges, symmetric for credits.
 * Accepts plain and exponent notation ("0.06", "123.78912", "1e-7"), which is what `String(n)` gives.
 */
export function decimalToScaled(text: string, scale: number, field = "amount"): bigint {
  const match = DECIMAL.exec(text);
  const intDigits = match?.[2] ?? "";
  const fracDigits = match?.[3] ?? "";
  if (!match || intDigits.length + fracDigits.length === 0) {
    throw new BillingError(field, `not a decimal number: ${JSON.stringify(text)}`);
  }
  const exponent = Number(match[4] ?? "0");
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > MAX_EXPONENT) {
    throw new BillingError(field, `exponent out of range: ${JSON.stringify(text)}`);
  }
  const digits = BigInt(intDigits + fracDigits);
  const shift = exponent + scale - fracDigits.length; // value in units = digits * 10^shift
  let magnitude: bigint;
  if (shift >= 0) {
    magnitude = digits * 10n ** BigInt(shift);
  } else {
    const divisor = 10n ** BigInt(-shift);
    magnitude = digits / divisor;
    if ((digits % divisor) * 2n >= divisor) magnitude += 1n;
  }
  if (magnitude > INT64_MAX) throw new BillingError(field, `amount does not fit in int64 nano-USD: ${text}`);
  return match[1] === "-" ? -magnitude : magnitude;
}

/** A USD decimal string to nano-USD. */
export function usdDecimalToNano(text: string, field = "amount"): bigint {
  return decimalToScaled(text, USD_SCALE, field);
}

/** A cents decimal string (Anthropic cost_report) to nano-USD. */
export function centsDecimalToNano(text: string, field = "amount"): bigint {
  return decimalToScaled(text, CENTS_SCALE, field);
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
  return usdDecimalToNano(String(value), field);
}
