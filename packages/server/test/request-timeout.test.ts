// fetchUntilSilent: --timeout is the only limit on how long a server may stay silent, a value above
// undici's own 5-minute headers and body timeouts too (fetch's defaults gave up at 300 s whatever was asked).
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { fetchUntilSilent, requestTimeoutFrom } from "../src/cli/request-timeout.js";

const LATE_MS = 350_000;

/** Answers `/headers` 350 s late (by the clock the test moves), or `/body`'s first part at once and the rest 350 s late. */
const server = createServer((req, res) => {
  req.resume();
  if (req.url === "/headers") return void setTimeout(() => res.end("whole"), LATE_MS);
  res.writeHead(200).write("first, ");
  setTimeout(() => res.end("then the rest"), LATE_MS);
});
let url: string;
beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise<void>((resolve) => server.close(() => resolve()));
});

/**
 * What each path answers when asked with a 400 s timeout at once, the test's clock moved 1 s at a time
 * (real I/O in between) until all have answered or failed: its text, or its error's message and cause.
 * undici's own timers run on the faked setTimeout too (no request is made before in this file's process).
 */
async function answersAfterSilence(paths: string[]): Promise<string[]> {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
  try {
    const answers: (string | null)[] = paths.map(() => null);
    paths.forEach((path, i) => {
      fetchUntilSilent(`${url}${path}`, { method: "GET", headers: {} }, 400_000, () => new Error("silent"))
        .then((res) => res.text())
        .then(
          (text) => {
            answers[i] = text;
          },
          (e: Error) => {
            answers[i] = `${e.message} (${(e.cause as Error | undefined)?.message})`;
          },
        );
    });
    for (let s = 0; s < 420 && answers.includes(null); s++) {
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      await vi.advanceTimersByTimeAsync(1000);
    }
    return answers.map((a) => a ?? "no answer after 420 s");
  } finally {
    vi.useRealTimers();
  }
}

describe("a --timeout above undici's own 5 minutes (300 s)", () => {
  it("lets a server answer after 350 s of silence, before its headers or within its body", async () => {
    expect(await answersAfterSilence(["/headers", "/body"])).toEqual(["whole", "first, then the rest"]);
  });
});

describe("requestTimeoutFrom", () => {
  it("is --timeout, else TOLLGATE_TIMEOUT (empty is unset), else the command's default", () => {
    expect(requestTimeoutFrom("2.5", { TOLLGATE_TIMEOUT: "9" })).toBe(2_500);
    expect(requestTimeoutFrom(undefined, { TOLLGATE_TIMEOUT: "9" })).toBe(9_000);
    expect(requestTimeoutFrom(undefined, { TOLLGATE_TIMEOUT: "" })).toBe(30_000);
    // purge's: the server answers once the purge is done
    expect(requestTimeoutFrom(undefined, {}, 3_600)).toBe(3_600_000);
    expect(requestTimeoutFrom("5", {}, 3_600)).toBe(5_000);
    expect(() => requestTimeoutFrom("0", {}, 3_600)).toThrow("--timeout must be a number of seconds above 0");
  });
});
