import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { Server, Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";

/**
 * `server` as a data dir's running server for the test file: the CLI finds it through `<dataDir>/server.json`,
 * with this test's pid as the server's (a live one). Connections still open (a stub that never answers)
 * are closed after the file.
 */
export function stubServerFor(dataDir: string, server: Server): void {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(
      join(dataDir, "server.json"),
      JSON.stringify({ pid: process.pid, url: `http://127.0.0.1:${port}`, token: "tg_root_x", role: "all" }),
    );
  });
  afterAll(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
}

/**
 * GET /api/workspaces/default of a stub server, which a reading command asks first (workspace-check.ts): its
 * calls are in `default` (the workspace read unless -w says).
 */
export const DEFAULT_WORKSPACE = { url: "/api/workspaces/default", answer: { id: "default", calls: true } };

/**
 * A stub of a data dir's running server: it answers the first page of a calls export (one of two calls),
 * and every other request fails with a 500 (`then: "fail"`: a long command fails midway) or is never
 * answered (`"stall"`: a hung server, or a slow one the user interrupts).
 */
export function firstPageServerFor(dataDir: string, then: "fail" | "stall"): void {
  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    req.resume();
    if (req.url === DEFAULT_WORKSPACE.url) return reply(200, DEFAULT_WORKSPACE.answer);
    if (req.url?.startsWith("/api/export/calls") && !req.url.includes("cursor="))
      return reply(200, {
        generated_at: new Date().toISOString(),
        window: { from: "2026-01-01T00:00:00.000Z", to: "2026-01-02T00:00:00.000Z" },
        coverage: { raw_available_from: null, summary_available_from: null, truncated: false },
        columns: ["event_id"],
        total: 2,
        rows: [["first"]],
        next: "second-page",
      });
    if (then === "fail")
      reply(500, { error: { type: "api_error", code: "internal", message: "store went away" } });
  });
  stubServerFor(dataDir, server);
}
