import type { AttrMap, AttrValue } from "./spans.js";

/** Typed reads of OTel attributes: the span's own first, its resource's (service-wide values) after. */
export class Attributes {
  constructor(
    readonly span: AttrMap,
    readonly resource: AttrMap,
  ) {}

  raw(key: string): AttrValue | undefined {
    const v = this.span[key];
    return v === undefined || v === null ? (this.resource[key] ?? undefined) : v;
  }

  /**
   * The first of `keys` (one key, or a constant list: no array per call) set on the span, else on the
   * resource, as text (numbers and booleans, ids sent as ints say, as their text); "" counts as unset.
   */
  text(keys: string | readonly string[]): string | undefined {
    if (typeof keys === "string") return asText(this.span[keys]) ?? asText(this.resource[keys]);
    return firstText(this.span, keys) ?? firstText(this.resource, keys);
  }

  bool(key: string): boolean | undefined {
    const v = this.raw(key);
    return typeof v === "boolean" ? v : v === "true" ? true : v === "false" ? false : undefined;
  }

  number(key: string): number | undefined {
    const v = this.raw(key);
    return typeof v === "number" && Number.isFinite(v) ? v : undefined;
  }
}

function firstText(attrs: AttrMap, keys: readonly string[]): string | undefined {
  for (let i = 0; i < keys.length; i++) {
    const v = asText(attrs[keys[i]!]);
    if (v !== undefined) return v;
  }
  return undefined;
}

function asText(v: AttrValue | undefined): string | undefined {
  if (typeof v === "string") return v === "" ? undefined : v;
  return typeof v === "number" || typeof v === "boolean" || typeof v === "bigint" ? String(v) : undefined;
}

/**
 * Many fields, each the text of the first of its keys that is set on the span, else on the resource:
 * what Attributes.text gives per field, read in one pass over each map (most keys are absent, and looking
 * each one up on both maps was most of the mapping's attribute reads).
 */
export class TextFields {
  /** Attribute key → field index × KEYS_PER_FIELD + the key's rank among the field's keys. */
  readonly #byKey = new Map<string, number>();
  // Scratch space of #scan, sized once and cleared per use: readInto runs once per span, synchronously.
  readonly #onSpan: (string | undefined)[];
  readonly #onResource: (string | undefined)[];
  readonly #ranks: number[];

  constructor(readonly fields: readonly (readonly [string, readonly string[]])[]) {
    this.#onSpan = new Array(fields.length).fill(undefined);
    this.#onResource = new Array(fields.length).fill(undefined);
    this.#ranks = new Array(fields.length).fill(0);
    fields.forEach(([, keys], i) => {
      if (keys.length > KEYS_PER_FIELD) throw new Error(`at most ${KEYS_PER_FIELD} keys per field`);
      keys.forEach((k, rank) => {
        if (this.#byKey.has(k)) throw new Error(`key ${k} read for two fields`);
        this.#byKey.set(k, i * KEYS_PER_FIELD + rank);
      });
    });
  }

  /** Sets out[field] for every field (undefined when no key of it is set). */
  readInto(a: Attributes, out: Record<string, unknown>): void {
    const onSpan = this.#scan(a.span, this.#onSpan);
    const onResource = this.#scan(a.resource, this.#onResource);
    for (let i = 0; i < this.fields.length; i++) out[this.fields[i]![0]] = onSpan[i] ?? onResource[i];
  }

  #scan(attrs: AttrMap, texts: (string | undefined)[]): (string | undefined)[] {
    texts.fill(undefined);
    const ranks = this.#ranks;
    for (const k in attrs) {
      const at = this.#byKey.get(k);
      if (at === undefined) continue;
      const i = (at / KEYS_PER_FIELD) | 0;
      const rank = at % KEYS_PER_FIELD;
      if (texts[i] !== undefined && ranks[i]! < rank) continue;
      const text = asText(attrs[k]);
      if (text === undefined) continue;
      texts[i] = text;
      ranks[i] = rank;
    }
    return texts;
  }
}

const KEYS_PER_FIELD = 16;
