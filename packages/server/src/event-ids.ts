import { hash } from "node:crypto";

/**
 * A UUID (version 8, RFC 9562 custom layout) from the SHA-256 of a name: the same name always gives the
 * same event_id, so a call recorded again (an exporter's retry, a response polled twice) is stored once.
 */
export function namedEventId(name: string): string {
  const h = hash("sha256", name, "hex");
  const version = `8${h.slice(13, 16)}`;
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16) + h.slice(17, 20);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${version}-${variant}-${h.slice(20, 32)}`;
}
