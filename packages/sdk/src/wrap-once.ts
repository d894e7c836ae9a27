import { unwrappedCopy } from "./instrument/wrap.js";
import type { WrapOptions } from "./setup.js";

/** The options each client was wrapped with (wrapOpenAI, wrapAnthropic, wrapOpenAIRealtime). */
const wrappedWith = new WeakMap<object, WrapOptions>();

/**
 * Wraps `client` with `options` (`instrument`, which changes the client in place) once. Wrapped again with
 * the same options, it is returned as it is; with others, a copy of it (`withOptions({})`) is wrapped with
 * those and returned, the client keeping its own: every call is recorded once, as the client it is made on
 * says. Its methods cannot record by two sets of options at once (recorded twice) or by the second silently
 * (a library's sink robbed by the app's).
 */
export function wrapOnce<C extends object>(
  what: string,
  client: C,
  options: WrapOptions,
  instrument: (client: C, options: WrapOptions) => void,
): C {
  const first = wrappedWith.get(client);
  if (first === undefined) {
    // As they are now: an options object the app changes later is other options (and its clients keep these).
    const own = keptOf(options);
    wrappedWith.set(client, own);
    instrument(client, own);
    return client;
  }
  if (sameOptions(first, options)) return client;
  const copy = unwrappedCopy(client) as C | null;
  if (!copy)
    throw new TypeError(
      `${what}: this client is wrapped already, with other options, and makes no copy of itself (withOptions) ` +
        "to wrap with these: wrap it once, or wrap another client",
    );
  return wrapOnce(what, copy, options, instrument);
}

/** Every field of WrapOptions (the compiler says when one is missing): what a wrap's records depend on. */
const FIELDS = Object.keys({
  provider: true,
  exporter: true,
  sink: true,
  estimateCost: true,
  followBackgroundMs: true,
} satisfies Record<keyof WrapOptions, true>) as (keyof WrapOptions)[];

/** The fields of `options` as they are now (read as the wrap reads them: a getter's, an inherited one's too). */
function keptOf(options: WrapOptions): WrapOptions {
  return Object.fromEntries(FIELDS.map((f) => [f, options[f]]).filter(([, v]) => v !== undefined));
}

/** Options that record alike: each field the same (a field left out is the same as undefined). */
function sameOptions(a: WrapOptions, b: WrapOptions): boolean {
  return FIELDS.every((f) => Object.is(a[f], b[f]));
}
