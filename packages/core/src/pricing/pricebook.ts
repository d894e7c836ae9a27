import { z } from "zod";
import { type Decimal, parseDecimal } from "../money/decimal.js";
import { type PriceRates, RATE_KEYS, ratesFrom } from "./rates.js";

const decimalString = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    const d = parseDecimal(String(v));
    if (d.units < 0n) throw new Error("negative");
    return String(v);
  } catch {
    ctx.addIssue({
      code: "custom",
      message: `must be a non-negative decimal such as "1.25", got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
});

const isoDate = z.iso.datetime({ offset: true }).or(z.iso.date());

const rate = z.union([
  decimalString,
  z.strictObject({
    base: decimalString,
    tiers: z.array(z.strictObject({ start: z.number().int().nonnegative(), price: decimalString })).min(1),
  }),
]);

const rateMap = z.strictObject(
  Object.fromEntries(RATE_KEYS.map((k) => [k, rate.optional()])) as Record<
    (typeof RATE_KEYS)[number],
    z.ZodOptional<typeof rate>
  >,
);

/** Model patterns: exact (case-insensitive) or with `*` wildcards. */
const pattern = z.string().min(1);

export const PriceBookSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, _ . - only"),
  version: z.number().int().nonnegative(),
  aliases: z
    .array(
      z.strictObject({
        provider: z.string().min(1),
        model: pattern,
        to: z.strictObject({ provider: z.string().min(1), model: z.string().min(1) }),
      }),
    )
    .default([]),
  models: z
    .array(
      z.strictObject({
        provider: z.string().min(1),
        model: pattern,
        effective_from: isoDate.optional(),
        effective_to: isoDate.optional(),
        prices: rateMap,
      }),
    )
    .default([]),
  discounts: z
    .array(
      z.strictObject({
        provider: z.string().min(1),
        model: pattern.optional(),
        multiplier: decimalString,
        effective_from: isoDate.optional(),
        effective_to: isoDate.optional(),
      }),
    )
    .default([]),
  batch: z.array(z.strictObject({ provider: z.string().min(1), multiplier: decimalString })).default([]),
  // Service tiers billed apart from the list price (OpenAI's priority): a multiplier on the model's rates,
  // or the tier's own prices laid over them. A tier given here also replaces flex's batch-rate default.
  tiers: z
    .array(
      z
        .strictObject({
          provider: z.string().min(1),
          model: pattern.optional(),
          tier: z.string().min(1),
          multiplier: decimalString.optional(),
          prices: rateMap.optional(),
          effective_from: isoDate.optional(),
          effective_to: isoDate.optional(),
        })
        .refine((t) => (t.multiplier === undefined) !== (t.prices === undefined), {
          message: "give either multiplier or prices",
        }),
    )
    .default([]),
});
export type PriceBookInput = z.input<typeof PriceBookSchema>;

export class PriceBookError extends Error {
  override name = "PriceBookError";
}

interface Window {
  from: number;
  to: number;
}
interface ModelEntry {
  m: Matcher;
  w: Window;
  rates: PriceRates;
}
interface DiscountEntry {
  m: Matcher;
  w: Window;
  multiplier: Decimal;
  text: string;
}
/** A service tier's pricing: a multiplier on the model's rates, or rates laid over them. */
export type TierPricing = { multiplier: Decimal; text: string } | { rates: PriceRates };
type TierEntry = { m: Matcher; w: Window; tier: string; pricing: TierPricing };
interface Matcher {
  provider: string;
  test: (model: string) => boolean;
  specificity: number;
}

function matcher(provider: string, model: string | undefined): Matcher {
  const p = provider.toLowerCase();
  if (model === undefined) return { provider: p, test: () => true, specificity: 0 };
  const m = model.toLowerCase();
  if (!m.includes("*")) return { provider: p, test: (x) => x.toLowerCase() === m, specificity: 2 };
  const re = new RegExp(`^${m.split("*").map(escapeRe).join(".*")}$`);
  return { provider: p, test: (x) => re.test(x.toLowerCase()), specificity: 1 };
}

function escapeRe(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
}

function window(from?: string, to?: string): Window {
  return {
    from: from ? Date.parse(from) : Number.NEGATIVE_INFINITY,
    to: to ? Date.parse(to) : Number.POSITIVE_INFINITY,
  };
}

const inWindow = (w: Window, at: number) => at >= w.from && at < w.to;

export interface PriceBookHit {
  rates: PriceRates;
  ref: string;
}

/** A validated price book: custom/fine-tuned model prices, discounts, batch rates, service tiers, aliases. */
export class PriceBook {
  readonly ref: string;
  readonly #aliases: { m: Matcher; to: { provider: string; model: string } }[];
  readonly #models: ModelEntry[];
  readonly #discounts: DiscountEntry[];
  readonly #batch: Map<string, { multiplier: Decimal; text: string }>;
  readonly #tiers: TierEntry[];

  private constructor(book: z.output<typeof PriceBookSchema>) {
    this.ref = `pricebook:${book.name}@${book.version}`;
    this.#aliases = book.aliases.map((a) => ({ m: matcher(a.provider, a.model), to: a.to }));
    this.#models = book.models.map((e) => ({
      m: matcher(e.provider, e.model),
      w: window(e.effective_from, e.effective_to),
      rates: ratesFrom(e.prices),
    }));
    this.#discounts = book.discounts.map((d) => ({
      m: matcher(d.provider, d.model),
      w: window(d.effective_from, d.effective_to),
      multiplier: parseDecimal(d.multiplier),
      text: d.multiplier,
    }));
    this.#batch = new Map(
      book.batch.map((b) => [
        b.provider.toLowerCase(),
        { multiplier: parseDecimal(b.multiplier), text: b.multiplier },
      ]),
    );
    this.#tiers = book.tiers.map((t) => ({
      m: matcher(t.provider, t.model),
      w: window(t.effective_from, t.effective_to),
      tier: t.tier.toLowerCase(),
      pricing: t.prices
        ? { rates: ratesFrom(t.prices) }
        : { multiplier: parseDecimal(t.multiplier!), text: t.multiplier! },
    }));
  }

  /** Validates a parsed YAML/JSON document; errors name the path, e.g. `models.0.prices.input_mtok`. */
  static parse(doc: unknown): PriceBook {
    const res = PriceBookSchema.safeParse(doc);
    if (!res.success) {
      const msg = res.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
      throw new PriceBookError(`invalid price book: ${msg}`);
    }
    return new PriceBook(res.data);
  }

  alias(provider: string, model: string): { provider: string; model: string } {
    const p = provider.toLowerCase();
    const hit = this.#aliases.find((a) => a.m.provider === p && a.m.test(model));
    return hit ? hit.to : { provider, model };
  }

  /** The latest-effective custom price in force at `at`, most specific pattern first. */
  model(provider: string, model: string, at: number): PriceBookHit | null {
    const best = pickBest(this.#models, provider, model, at);
    return best ? { rates: best.rates, ref: this.ref } : null;
  }

  discount(provider: string, model: string, at: number): { multiplier: Decimal; text: string } | null {
    return pickBest(this.#discounts, provider, model, at);
  }

  batch(provider: string): { multiplier: Decimal; text: string } | null {
    return this.#batch.get(provider.toLowerCase()) ?? null;
  }

  /** How the service tier `tier` is priced for the model at `at`, when the book says. */
  tier(provider: string, model: string, tier: string, at: number): TierPricing | null {
    const t = tier.toLowerCase();
    return (
      pickBest(
        this.#tiers.filter((e) => e.tier === t),
        provider,
        model,
        at,
      )?.pricing ?? null
    );
  }
}

/** Among entries in force at `at`: the most specific model pattern, then the latest `effective_from`. */
function pickBest<T extends { m: Matcher; w: Window }>(
  entries: T[],
  provider: string,
  model: string,
  at: number,
): T | null {
  const p = provider.toLowerCase();
  let best: T | null = null;
  for (const e of entries) {
    if (e.m.provider !== p || !inWindow(e.w, at) || !e.m.test(model)) continue;
    if (
      !best ||
      e.m.specificity > best.m.specificity ||
      (e.m.specificity === best.m.specificity && e.w.from >= best.w.from)
    )
      best = e;
  }
  return best;
}
