import {
  type Attribution,
  EMPTY_ATTRIBUTION,
  mergeAttribution,
  type RecordAttribution,
} from "./attribution.js";
import { newSpanId, newTraceId } from "./ids.js";
import { ownStorage } from "./own-context.js";

/** What a call made here inherits: attribution of every enclosing scope, and the span it runs in. */
export interface Scope {
  attribution: RecordAttribution;
  traceId: string | null;
  spanId: string | null;
}

const ROOT: Scope = Object.freeze({ attribution: EMPTY_ATTRIBUTION, traceId: null, spanId: null });
const storage = ownStorage<Scope>();

export function currentScope(): Scope {
  return storage.getStore() ?? ROOT;
}

/** The ids of a new span under the current scope: the same trace (or a new one), the current span as parent. */
export function childSpan(scope: Scope): {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
} {
  return { trace_id: scope.traceId ?? newTraceId(), span_id: newSpanId(), parent_span_id: scope.spanId };
}

/**
 * Runs `fn` with `attribution` applied to every call recorded inside it, however deep: helpers need no
 * argument passed down. Nested scopes refine outer ones (fields win, tags add up, metadata merges).
 */
export function withAttribution<T>(attribution: Attribution, fn: () => T): T {
  const scope = currentScope();
  return storage.run({ ...scope, attribution: mergeAttribution(scope.attribution, attribution) }, fn);
}

/** Runs `fn` inside a scope whose span is `spanId` (in `traceId`): calls inside become its children. */
export function runInSpan<T>(scope: Scope, traceId: string, spanId: string, fn: () => T): T {
  return storage.run({ attribution: scope.attribution, traceId, spanId }, fn);
}
