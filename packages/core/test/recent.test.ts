// What a process remembers of recent things is bounded: the oldest entry goes first, and whoever keeps the
// entries is told of each one pushed out (an SDK submission lets its hold go then), not of one deleted or set again.
import { describe, expect, it } from "vitest";
import { Recent } from "../src/index.js";

describe("Recent", () => {
  it("tells of each entry pushed out by a newer one, oldest first, once it holds the newer one", () => {
    const forgotten: [string, boolean][] = [];
    const recent: Recent<string> = new Recent<string>({
      max: 2,
      forgotten: (value) => forgotten.push([value, recent.has("c")]),
    });
    recent.set("a", "A");
    recent.set("b", "B");
    recent.set("a", "A again"); // set again: the newest, nothing pushed out
    recent.delete("b"); // deleted: not told
    recent.set("b", "B again");
    expect(forgotten).toEqual([]);
    recent.set("c", "C");
    expect(forgotten).toEqual([["A again", true]]);
    expect([recent.has("a"), recent.get("b"), recent.get("c")]).toEqual([false, "B again", "C"]);
  });

  it("keeps what is touched (least recently used goes first), never more than max", () => {
    const recent = new Recent<number>({ max: 3 });
    for (const id of ["a", "b", "c"]) recent.set(id, id.charCodeAt(0));
    expect(recent.touch("a")).toBe(97); // now the newest: b is the oldest
    expect(recent.touch("z")).toBeUndefined(); // not there: nothing added
    recent.set("d", 100);
    expect([recent.has("a"), recent.has("b"), recent.has("c"), recent.has("d")]).toEqual([
      true,
      false,
      true,
      true,
    ]);
    for (let i = 0; i < 50; i++) {
      recent.set(`cold-${i}`, i);
      recent.touch("a");
      expect(recent.size).toBe(3);
    }
    expect(recent.get("a")).toBe(97);
  });
});
