import { hash } from "node:crypto";

/**
 * The event_id of a span: a UUID (version 8, RFC 9562 custom layout) from the SHA-256 of its trace and
 * span ids, so an exporter's retry of the same span is the same event and never counted twice.
 */
export function spanEventId(traceIdHex: string, spanIdHex: string): string {
  const h = hash("sha256", `otlp:${traceIdHex}:${spanIdHex}`, "hex");
  const version = `8${h.slice(13, 16)}`;
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16) + h.slice(17, 20);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${version}-${variant}-${h.slice(20, 32)}`;
}
