// A relayed reply's upstream body timeout (UpstreamTimer, on Node's timers) runs only while the reply is
// read: never while its reader holds it paused (a slow client, batch results waiting for the store), and
// never after the reply ended.
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { type Dispatcher, Pool } from "undici";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { requestLive } from "../src/gateway/live-reply.js";

const TIMEOUT_MS = 300;

/** What each path answers: a line every 30 ms for 3 s, or two lines 50 ms apart and the end. */
const ANSWERS: Record<string, (res: ServerResponse) => void> = {
  "/steady": (res) => {
    let i = 0;
    const tick = setInterval(() => {
      if (res.destroyed || i === 100) {
        clearInterval(tick);
        return void res.end();
      }
      res.write(`line ${i++}\n`);
    }, 30);
  },
  "/short": (res) => {
    res.write("first\n");
    setTimeout(() => res.end("last\n"), 50);
  },
};

const server = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  ANSWERS[req.url!]!(res);
});
let origin: string;
let pool: Pool;

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  pool = new Pool(origin);
});
afterAll(async () => {
  await pool.destroy();
  server.closeAllConnections();
  server.close();
});

/** `pool`, with every abort of a request it started noted (the upstream timer aborts the request when it fires). */
function watched(aborts: unknown[]): Dispatcher {
  return {
    dispatch: (opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) =>
      pool.dispatch(opts, {
        ...handler,
        onRequestStart(controller, context) {
          const noted = new Proxy(controller, {
            get(target, p) {
              if (p === "abort")
                return (reason: Error) => {
                  aborts.push(reason);
                  target.abort(reason);
                };
              const v = Reflect.get(target, p);
              return typeof v === "function" ? v.bind(target) : v;
            },
          });
          handler.onRequestStart!(noted, context);
        },
      }),
  } as unknown as Dispatcher;
}

const get = (path: string, dispatcher: Dispatcher = pool) =>
  requestLive(
    dispatcher,
    { origin, path, method: "GET", headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS },
    undefined,
  );

describe("a relayed reply's upstream body timeout", () => {
  it("does not run while the reply stays paused, though a chunk that came meanwhile paused it again as it resumed", async () => {
    const up = await get("/steady");
    const lines: string[] = [];
    // Its reader holds the reply after every chunk (as a hold does while the store is behind).
    const read = up.body.read((chunk) => {
      lines.push(chunk.toString());
      up.body.pause();
    });
    const outcome = read.then(
      () => "ended",
      (e: { code?: string }) => `failed: ${e.code}`,
    );
    // The first line read, then time for the next to wait in the connection (on a busy box the first can
    // take longer than a fixed sleep).
    await vi.waitFor(() => expect(lines.length).toBeGreaterThan(0));
    await sleep(100);
    const before = lines.length;
    up.body.resume(); // the chunk waiting in the connection comes at once, and pauses it again
    expect(lines.length).toBe(before + 1);
    // Paused for more than twice the timeout: the upstream is not late, its reader is.
    expect(await Promise.race([outcome, sleep(3 * TIMEOUT_MS).then(() => "paused")])).toBe("paused");
    up.body.cancel(new Error("done"));
  });

  it("is not left running by a reply that ended as it resumed", async () => {
    const aborts: unknown[] = [];
    const up = await get("/short", watched(aborts));
    let text = "";
    const read = up.body.read((chunk) => {
      text += chunk.toString();
      up.body.pause();
    });
    await sleep(150); // the rest, and the end, wait in the connection
    up.body.resume();
    await read;
    expect(text).toBe("first\nlast\n");
    await sleep(2 * TIMEOUT_MS);
    expect(aborts).toEqual([]); // no timer fired on the finished request
  });
});
