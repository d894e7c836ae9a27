import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Json, startTestGateway } from "./helpers.js";
import { type MockUpstream, startMockUpstream } from "./mock-upstream.js";
import { smallDisk, unmount } from "./small-disk.js";

const dir = mkdtempSync(join(tmpdir(), "tollgate-full-disk-"));
const disk = smallDisk(dir);
let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(async () => {
  await mock?.close();
  if (disk) unmount(disk);
  rmSync(dir, { recursive: true, force: true });
});

const ask = (via: OpenAI, n: number) =>
  Promise.all(
    Array.from({ length: n }, () =>
      via.chat.completions.create({ model: "gpt-4.1-nano", messages: [{ role: "user", content: "hi" }] }),
    ),
  );

/** Fills the disk to its last block: one big file, then small ones into whatever room is left. */
function fill(at: string): void {
  mkdirSync(at);
  for (const size of [64 * 1024 * 1024, 64 * 1024, 512]) {
    for (let i = 0; ; i++) {
      try {
        writeFileSync(join(at, `${size}-${i}`), Buffer.alloc(size));
      } catch {
        break; // ENOSPC: no room for one more of this size
      }
    }
  }
}

describe.skipIf(disk === null)("the data dir's disk fills up under a running gateway", () => {
  it.each([
    ["gateway", 200],
    ["all", 503],
  ] as const)(
    "role %s: /readyz answers %i naming the refused commits and spool; with room again, every call is stored",
    async (role, status) => {
      const filler = join(disk!, `filler-${role}`);
      const g = await startTestGateway(mock.url, {}, { role, dataDir: join(disk!, role) });
      try {
        const via = new OpenAI({ apiKey: "sk-test-123", baseURL: `${g.url}/v1`, maxRetries: 0 });
        await ask(via, 5);
        await g.runtime.recorder.flush();
        fill(filler);
        await ask(via, 20);
        await g.runtime.recorder.flush({ deadlineMs: 1_000 }); // the store refuses, so does the spool
        const full = await fetch(`${g.url}/readyz`);
        expect(full.status).toBe(status);
        const body = (await full.json()) as Json;
        const refused = /commits refused since [\dT:.Z-]+: .*No space left on device/.source;
        if (role === "gateway") {
          expect(body.store).toMatch(
            new RegExp(`^${refused}, calls wait in memory \\(the disk refuses the spool\\)$`),
          );
          expect(body.spool).toMatch(/^refused, calls wait in memory: ENOSPC/);
          // Calls wait in memory; not always all 20: a first small commit may still fit in room the store's
          // files already hold (seen: 17, 18). None is lost: all 25 are stored once the disk has room.
          expect(body.recorder_pending).toBeGreaterThan(0);
          expect(body.recorder_pending).toBeLessThanOrEqual(20);
        } else expect(body.reason).toMatch(new RegExp(`^store: ${refused}$`));

        rmSync(filler, { recursive: true });
        await g.runtime.recorder.flush();
        const again = await fetch(`${g.url}/readyz`);
        expect(again.status).toBe(200);
        const ok = (await again.json()) as Json;
        expect(ok).toMatchObject({ store: "ok", spool_depth: 0, recorder_pending: 0 });
        expect(ok.spool).toBeUndefined();
        expect(await g.runtime.store.count({ workspaceId: "default" })).toBe(25);
      } finally {
        rmSync(filler, { recursive: true, force: true });
        await g.stop();
      }
    },
  );
});
