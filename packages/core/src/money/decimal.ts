/**
 * Exact decimals as a scaled bigint: value = units / 10^scale.
 * Prices, discounts and USD amounts travel as decimal strings; floats never touch money.
 */
export interface Decimal {
  readonly units: bigint;
  readonly scale: number;
}

const DECIMAL_RE = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

export class DecimalError extends Error {
  override name = "DecimalError";
}

/** Parses "1.25", "0.000039", "3e-7", "-2", ".5", "+1". Throws DecimalError on anything else. */
export function parseDecimal(text: string): Decimal {
  const m = DECIMAL_RE.exec(text);
  const [, sign, int = "", frac = "", exp = "0"] = m ?? [];
  if (!m || int.length + frac.length === 0)
    throw new DecimalError(`not a decimal number: ${JSON.stringify(text)}`);
  const exponent = Number(exp);
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > 60) {
    throw new DecimalError(`exponent out of range: ${JSON.stringify(text)}`);
  }
  let units = BigInt(int + frac);
  let scale = frac.length - exponent;
  if (scale < 0) {
    units *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return normalize({ units: sign === "-" ? -units : units, scale });
}

/**
 * A JS number as the decimal it was written as (its shortest round-trip form), e.g. 0.1 → "0.1".
 * Used for genai-prices' numeric prices, which are decimal literals in its data file.
 */
export function decimalFromNumber(n: number): Decimal {
  if (!Number.isFinite(n)) throw new DecimalError(`not a finite number: ${n}`);
  return parseDecimal(String(n));
}

function normalize(d: Decimal): Decimal {
  let { units, scale } = d;
  while (scale > 0 && units % 10n === 0n) {
    units /= 10n;
    scale--;
  }
  return { units, scale };
}

export function mulDecimal(a: Decimal, b: Decimal): Decimal {
  return normalize({ units: a.units * b.units, scale: a.scale + b.scale });
}

/** -1, 0 or 1 as a < b, a = b, a > b (exact: cross-multiplied to one scale). */
export function compareDecimal(a: Decimal, b: Decimal): number {
  const x = a.units * 10n ** BigInt(Math.max(0, b.scale - a.scale));
  const y = b.units * 10n ** BigInt(Math.max(0, a.scale - b.scale));
  return x < y ? -1 : x > y ? 1 : 0;
}

export function decimalToString(d: Decimal): string {
  const negative = d.units < 0n;
  const digits = (negative ? -d.units : d.units).toString().padStart(d.scale + 1, "0");
  const int = digits.slice(0, digits.length - d.scale);
  const frac = digits.slice(digits.length - d.scale);
  return `${negative ? "-" : ""}${int}${frac ? `.${frac}` : ""}`;
}
