// TextFields reads many fields in one pass over a span's and a resource's attributes: each field must be
// exactly what Attributes.text gives for its key list (first key set wins, the span before the resource).
import { describe, expect, it } from "vitest";
import { Rng } from "../src/demo/random.js";
import { Attributes, TextFields } from "../src/ingest/otlp/attributes.js";
import type { AttrMap, AttrValue } from "../src/ingest/otlp/spans.js";

const FIELDS = [
  ["user_id", ["tollgate.user_id", "user.id", "traceloop.association.properties.user_id"]],
  ["session_id", ["tollgate.session_id", "session.id", "gen_ai.conversation.id"]],
  ["feature", ["tollgate.feature"]],
] as const;
const KEYS = [...FIELDS.flatMap(([, keys]) => keys), "other.key", "gen_ai.usage.input_tokens"];
const VALUES: AttrValue[] = ["a", "", 7, 0, true, 12345678901234567890n, null, ["x"], { k: "v" }];

describe("TextFields", () => {
  it("agrees with Attributes.text on 5,000 random span and resource attribute sets", () => {
    const rng = new Rng(5);
    const table = new TextFields(FIELDS);
    const attrs = (): AttrMap => {
      const m: AttrMap = {};
      for (let n = rng.int(0, 6); n > 0; n--) m[rng.pick(KEYS)] = rng.pick(VALUES);
      return m;
    };
    for (let i = 0; i < 5000; i++) {
      const a = new Attributes(attrs(), attrs());
      const out: Record<string, unknown> = {};
      table.readInto(a, out);
      for (const [field, keys] of FIELDS) expect(out[field]).toBe(a.text(keys));
    }
  });

  it("the first key set wins on the span, and any key on the span beats the resource", () => {
    const table = new TextFields(FIELDS);
    const out: Record<string, unknown> = {};
    const span = {
      "traceloop.association.properties.user_id": "from-traceloop",
      "user.id": "",
      "session.id": 3,
    };
    table.readInto(
      new Attributes(span, { "tollgate.user_id": "from-resource", "tollgate.feature": "f" }),
      out,
    );
    expect(out).toEqual({ user_id: "from-traceloop", session_id: "3", feature: "f" });
  });

  it("refuses a key read for two fields", () => {
    expect(
      () =>
        new TextFields([
          ["a", ["k"]],
          ["b", ["k"]],
        ]),
    ).toThrow(/key k read for two fields/);
  });
});
