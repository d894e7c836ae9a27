import { type EventFilter, observeApiPromise, tapParsed } from "./api-promise.js";
import { recordIfFinished } from "./background.js";
import type { CallSpec, RecordSink } from "./call.js";
import { TrackedCall } from "./call.js";

/** Marks a resource whose `create` is already wrapped, so wrapping a client twice records once. */
const WRAPPED = Symbol.for("tollgate.wrapped");
/** The same for `retrieve`. */
const RETRIEVE_WRAPPED = Symbol.for("tollgate.wrapped.retrieve");

type Create = (this: unknown, body: Record<string, unknown>, options?: unknown) => unknown;
type Retrieve = (this: unknown, ...args: unknown[]) => unknown;

/** How one method's request is adjusted before it is sent (and what of the reply the app must not see). */
export type Prepare = (body: Record<string, unknown>) => {
  body: Record<string, unknown>;
  hideEvent?: EventFilter;
};

/**
 * Replaces `resource.create` (on the instance: the SDK's own helpers, such as `.stream()`, call it too)
 * with one that records every call through `sink`. Returns false when the resource is absent.
 */
export function wrapCreate(resource: unknown, spec: CallSpec, sink: RecordSink, prepare?: Prepare): boolean {
  const target = resource as ({ create?: Create } & { [WRAPPED]?: true }) | undefined;
  if (!target || typeof target.create !== "function" || target[WRAPPED]) return false;
  const original = target.create;
  target.create = function create(this: unknown, body, options) {
    if (typeof body !== "object" || body === null) return original.call(this, body, options);
    let call: TrackedCall;
    try {
      call = new TrackedCall(spec, body, sink);
    } catch (refused) {
      return rejection(refused); // an agent run over its ceiling: nothing is sent
    }
    const prepared = prepare?.(body) ?? { body };
    return observeApiPromise(original.call(this, prepared.body, options), call, prepared.hideEvent);
  };
  Object.defineProperty(target, WRAPPED, { value: true });
  return true;
}

/**
 * Replaces `responses.retrieve` with one that records a background response the poll finds finished
 * (once; recordIfFinished). Returns false when the resource is absent.
 */
export function wrapRetrieve(resource: unknown, spec: CallSpec, sink: RecordSink): boolean {
  const target = resource as ({ retrieve?: Retrieve } & { [RETRIEVE_WRAPPED]?: true }) | undefined;
  if (!target || typeof target.retrieve !== "function" || target[RETRIEVE_WRAPPED]) return false;
  const original = target.retrieve;
  target.retrieve = function retrieve(this: unknown, ...args: unknown[]) {
    // The poll's scope and run, as at the call (inside `run.llm(…)`, say), should it record the response.
    const poll = new TrackedCall(spec, {}, sink, { counted: false });
    return tapParsed(original.apply(this, args), (value) => recordIfFinished(value, poll));
  };
  Object.defineProperty(target, RETRIEVE_WRAPPED, { value: true });
  return true;
}

/** A refused call fails the way the SDK's own calls do: as a rejected promise, whichever way it is read. */
function rejection(err: unknown): Promise<never> {
  const p = Promise.reject(err);
  return Object.assign(p, { withResponse: () => p, asResponse: () => p, parse: () => p });
}
