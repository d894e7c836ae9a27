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
