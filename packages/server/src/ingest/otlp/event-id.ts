import { namedEventId } from "../../event-ids.js";

/**
 * The event_id of a span, named by its trace and span ids, so an exporter's retry of the same span is the
 * same event and never counted twice.
 */
export function spanEventId(traceIdHex: string, spanIdHex: string): string {
  return namedEventId(`otlp:${traceIdHex}:${spanIdHex}`);
}
