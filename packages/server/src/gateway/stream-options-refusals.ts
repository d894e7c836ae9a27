import { Recent } from "@tollgate/core";

/** How many upstreams (base URL and api-version) are remembered: they come from config and client queries. */
const MAX_REMEMBERED = 1_000;

/**
 * The upstreams that refused the stream_options the gateway adds, so that it stops adding it there: each of
 * their streamed calls would otherwise go upstream twice, its first try a refusal. An upstream is its base
 * URL and the `api-version` a request names (Azure OpenAI's: a newer one takes stream_options). Bounded:
 * one pushed out is asked again, and refuses once more.
 */
export class StreamOptionsRefusals {
  readonly #refused = new Recent<true>({ max: MAX_REMEMBERED });

  /** Whether the upstream of `base` and `pathAndQuery` (a call's upstream path) has refused it. */
  has(base: string, pathAndQuery: string): boolean {
    return this.#refused.touch(upstreamKey(base, pathAndQuery)) !== undefined;
  }

  /**
   * Remembers a refusal: the upstream's name when it is new, to be told once; null when it was remembered
   * already (a call that was on its way meanwhile).
   */
  add(base: string, pathAndQuery: string): string | null {
    const key = upstreamKey(base, pathAndQuery);
    return this.#refused.add(key, true) ? key : null;
  }
}

/** An upstream as far as stream_options goes: its base URL, and the api-version a request names, if any. */
function upstreamKey(base: string, pathAndQuery: string): string {
  const version = apiVersionOf(pathAndQuery);
  return version === null ? base : `${base}?api-version=${version}`;
}

/** The `api-version` query parameter of a path (Azure OpenAI's), or null. */
function apiVersionOf(pathAndQuery: string): string | null {
  const q = pathAndQuery.indexOf("?");
  return q === -1 ? null : new URLSearchParams(pathAndQuery.slice(q + 1)).get("api-version");
}
