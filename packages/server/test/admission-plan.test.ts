// The admission plan is cached per distinct set of the facts a workspace's policies read: the same facts
// must get the same plan, and every fact a scope, an override or a tag reads must tell plans apart.
import { BudgetSchema, compileBudget, RateLimitSchema } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { admissionPlan, MAX_PLANS } from "../src/limits/admission-plan.js";
import type { WorkspacePolicies } from "../src/limits/policies.js";

const policies = (): WorkspacePolicies => ({
  budgets: [
    { id: "ws", window: "month", limit_usd: "100" },
    {
      id: "per-customer",
      scope: { customer_id: "*" },
      window: "day",
      limit_usd: "1",
      overrides: [{ when: { customer_id: "acme" }, limit_usd: "5" }],
    },
    { id: "chat", scope: { feature: "chat", tag: "beta" }, window: "24h", limit_usd: "2" },
  ].map((b) => compileBudget(BudgetSchema.parse(b))),
  rates: [
    RateLimitSchema.parse({ id: "rpm", scope: { user_id: "*" }, requests_per_min: 10, tokens_per_min: 99 }),
  ],
  agents: new Map(),
});

describe("admission plan", () => {
  it("is the same object for the same facts, whatever facts the policies do not read", () => {
    const p = policies();
    const a = admissionPlan(p, { customer_id: "c1", user_id: "u1", session_id: "s1" });
    expect(admissionPlan(p, { customer_id: "c1", user_id: "u1", session_id: "s2" })).toBe(a);
    expect(a.buckets.map((b) => b.key)).toEqual(["b:ws:-", "b:per-customer:c1"]);
    expect(a.rates.map((r) => r.key)).toEqual(["q:rpm:u1", "t:rpm:u1"]);
    expect(a.tokenRates).toEqual([{ key: "t:rpm:u1" }]);
  });

  it("tells apart every fact a scope, an override or a tag reads", () => {
    const p = policies();
    const acme = admissionPlan(p, { customer_id: "acme", user_id: "u1" });
    expect(acme.buckets[1]!.limit).toBe(5_000_000_000n);
    expect(admissionPlan(p, { customer_id: "c2", user_id: "u1" }).buckets[1]!.limit).toBe(1_000_000_000n);
    expect(admissionPlan(p, { customer_id: "acme", user_id: "u2" }).rates[0]!.key).toBe("q:rpm:u2");
    const chat = (tags: string[]) => admissionPlan(p, { feature: "chat", tags }).budgets.map((b) => b.id);
    expect(chat(["beta"])).toEqual(["ws", "per-customer", "chat"]);
    expect(chat(["stable"])).toEqual(["ws", "per-customer"]);
    // A missing fact is the empty value, as scopes see it.
    expect(admissionPlan(p, { customer_id: null })).toBe(admissionPlan(p, {}));
  });

  it("starts over for a changed policy set (a new object)", () => {
    const first = policies();
    const facts = { customer_id: "c1" };
    const before = admissionPlan(first, facts);
    const changed = policies();
    changed.budgets.pop();
    expect(admissionPlan(changed, facts)).not.toBe(before);
    expect(admissionPlan(first, facts)).toBe(before);
  });

  it("full, drops the least recently used plan, one at a time: a hot caller's plan stays", () => {
    const p = policies();
    const cold = (i: number) => admissionPlan(p, { customer_id: `c${i}`, user_id: `u${i}` });
    const made = Array.from({ length: MAX_PLANS }, (_, i) => cold(i));
    cold(MAX_PLANS); // one past full: the oldest goes, not every plan
    expect(cold(1)).toBe(made[1]);
    expect(cold(0)).not.toBe(made[0]);
    // Twice as many callers again, the hot one calling now and then among them: its plan is never rebuilt.
    const hot = admissionPlan(p, { customer_id: "hot", user_id: "hot" });
    for (let i = MAX_PLANS + 1; i < 3 * MAX_PLANS; i++) {
      cold(i);
      if (i % 1000 === 0) expect(admissionPlan(p, { customer_id: "hot", user_id: "hot" })).toBe(hot);
    }
  });
});
