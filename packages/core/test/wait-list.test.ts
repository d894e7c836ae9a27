import { describe, expect, it } from "vitest";
import { WaitList } from "../src/wait-list.js";

describe("WaitList", () => {
  it("ends every wait at wakeAll(), and a later wait only at the next one (or its time)", async () => {
    const list = new WaitList();
    const ended: string[] = [];
    const a = list.wait(10_000).then(() => ended.push("a"));
    const b = list.wait(10_000).then(() => ended.push("b"));
    list.wakeAll();
    await Promise.all([a, b]);
    expect(ended).toEqual(["a", "b"]);
    const c = list.wait(10_000).then(() => ended.push("c"));
    await new Promise((r) => setTimeout(r, 5));
    expect(ended).not.toContain("c");
    list.wakeAll();
    await c;
    expect(ended).toContain("c");
  });

  it("ends a wait after its time; the waiter is gone, so a later wakeAll() ends only the others", async () => {
    const list = new WaitList();
    let short = 0;
    await list.wait(5).then(() => short++);
    const long = list.wait(10_000);
    list.wakeAll();
    await long;
    expect(short).toBe(1);
  });
});
