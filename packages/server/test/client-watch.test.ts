import { describe, expect, it } from "vitest";
import { pausableUntil } from "../src/gateway/client-watch.js";

const MB = 1024 * 1024;

describe("how much of an upstream reply the gateway may read while still able to pause it (pausableUntil)", () => {
  it("all of a chunked reply (HTTP/1.1), or of one with a length that says keep-alive", () => {
    expect(pausableUntil({ "transfer-encoding": "chunked" })).toBe(Infinity);
    expect(pausableUntil({ "content-length": "10", connection: "keep-alive" })).toBe(Infinity);
    expect(pausableUntil({ "content-length": "10", connection: "Keep-Alive" })).toBe(Infinity);
  });

  it("none of one that closes after it: connection: close, or no framing", () => {
    expect(pausableUntil({ "transfer-encoding": "chunked", connection: "close" })).toBe(0);
    expect(pausableUntil({ "content-length": "10", connection: "close" })).toBe(0);
    expect(pausableUntil({})).toBe(0);
    expect(pausableUntil({ "content-length": "lots" })).toBe(0);
  });

  it("a length without keep-alive (an HTTP/1.0 reply closes after it, HTTP/1.1 keeps alive): all but its last 12 MB", () => {
    expect(pausableUntil({ "content-length": String(40 * MB) })).toBe(28 * MB);
    expect(pausableUntil({ "content-length": String(6 * MB) })).toBe(0);
  });
});
