import { Recent } from "../recent.js";

/** The statuses an upstream refuses a request parameter it does not know with (400; 422: pydantic's servers). */
const REFUSAL_STATUSES = new Set([400, 422]);

/**
 * Whether an answer of this status may refuse the `stream_options` added to an OpenAI stream to ask for
 * its usage: its error text says (refusesStreamOptions).
 */
export function mayRefuseStreamOptions(status: number): boolean {
  return REFUSAL_STATUSES.has(status);
}

/**
 * Whether an error answer refuses the `stream_options` added to an OpenAI stream to ask for its usage
 * (Azure OpenAI before api-version 2024-09-01-preview: 400 "Unrecognized request argument supplied:
 * stream_options"; a compatible server that forbids unknown fields: 422 naming it). `text`: its error's
 * text (the start of its body, or an SDK error's message).
 */
export function refusesStreamOptions(status: number, text: string): boolean {
  return mayRefuseStreamOptions(status) && /\bstream_options\b/.test(text);
}

/**
 * An upstream as far as stream_options go: its base URL, and the api-version it is asked with, if any
 * (Azure OpenAI's: one from 2024-09-01-preview takes them).
 */
export function streamOptionsUpstream(base: string, apiVersion: string | null): string {
  return apiVersion === null ? base : `${base}?api-version=${apiVersion}`;
}

/**
 * The upstreams (streamOptionsUpstream) that refused the stream_options added to ask a stream's usage, so
 * they are asked no more: each of their streamed calls would otherwise go twice, its first try refused.
 * Bounded (the last 1,000: they come from config and clients' queries): one pushed out is asked again.
 */
export class StreamOptionsRefusals {
  readonly #refused = new Recent<true>({ max: 1_000 });

  has(upstream: string): boolean {
    return this.#refused.touch(upstream) !== undefined;
  }

  /** Remembers a refusal; false when it was remembered already (a call that was on its way meanwhile). */
  add(upstream: string): boolean {
    return this.#refused.add(upstream, true);
  }
}
