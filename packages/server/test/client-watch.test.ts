import { describe, expect, it } from "vitest";
import { canPause } from "../src/gateway/client-watch.js";

describe("which upstream replies the gateway may hold paused for a slow client (canPause)", () => {
  it("a chunked reply (HTTP/1.1), or one with a length that says keep-alive", () => {
    expect(canPause({ "transfer-encoding": "chunked" })).toBe(true);
    expect(canPause({ "content-length": "10", connection: "keep-alive" })).toBe(true);
    expect(canPause({ "content-length": "10", connection: "Keep-Alive" })).toBe(true);
  });

  it("not one to close: connection: close, no framing, or a length without keep-alive (HTTP/1.0 closes after it)", () => {
    expect(canPause({ "transfer-encoding": "chunked", connection: "close" })).toBe(false);
    expect(canPause({ "content-length": "10", connection: "close" })).toBe(false);
    expect(canPause({})).toBe(false);
    expect(canPause({ "content-length": "10" })).toBe(false);
  });
});
