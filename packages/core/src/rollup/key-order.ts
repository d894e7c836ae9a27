/**
 * Orders segment keys (a customer, a feature; null, the calls without one, first) by their UTF-16 code
 * units, the same on every machine: localeCompare follows the process's locale, so two servers could
 * order ties, and which row gets a rounding's last nano-USD, differently.
 */
export function keyOrder(a: string | null, b: string | null): number {
  const x = a ?? "";
  const y = b ?? "";
  return x < y ? -1 : x > y ? 1 : 0;
}
