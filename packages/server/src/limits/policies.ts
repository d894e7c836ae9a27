import {
  AgentCeilingsSchema,
  type Budget,
  BudgetSchema,
  type Ceilings,
  compileBudget,
  compileCeilings,
  type FieldError,
  issuesToFieldErrors,
  LIMIT_ID_RE,
  NewBudgetSchema,
  RateLimitSchema,
  type RateLimitSpec,
} from "@tollgate/core";
import { z } from "zod";
import type { LimitsStateStore, PolicyKind } from "../store/types.js";
import { ConfigFileError, readYamlFile } from "../yaml-file.js";
import { inWorkspace } from "./workspace-key.js";

/** A policy that failed validation: every field and why. */
export class PolicyError extends Error {
  constructor(
    readonly errors: FieldError[],
    readonly status = 400,
  ) {
    super(errors.map((e) => `${e.field}: ${e.reason}`).join("; "));
  }
}

export interface WorkspacePolicies {
  budgets: Budget[];
  rates: RateLimitSpec[];
  /** Ceilings per agent_type. */
  agents: Map<string, Ceilings>;
}

export interface PolicyEntry {
  kind: PolicyKind;
  id: string;
  spec: unknown;
  source: "file" | "api";
  updated_at: number | null;
  updated_by: string | null;
}

const EMPTY: WorkspacePolicies = { budgets: [], rates: [], agents: new Map() };

/** What decides a budget's buckets and their slots: an edit that changes it seeds them anew. */
function bucketing(spec: unknown): string {
  const s = spec as { scope?: unknown; window?: unknown; timezone?: unknown };
  return JSON.stringify([s.scope ?? {}, s.window, s.timezone ?? "UTC"]);
}

/** Validates one policy of a kind; the agent kind's id is its agent_type. */
export function validatePolicy(
  kind: PolicyKind,
  id: string | null,
  spec: unknown,
): { id: string; spec: unknown } {
  if (kind === "agent") {
    if (!id || !LIMIT_ID_RE.test(id))
      throw new PolicyError([{ field: "agent_type", reason: "must be 1-128 letters, digits, _ . : -" }]);
    const res = AgentCeilingsSchema.safeParse(spec);
    if (!res.success) throw new PolicyError(issuesToFieldErrors(res.error.issues));
    return { id, spec: res.data };
  }
  const res = (kind === "budget" ? NewBudgetSchema : RateLimitSchema).safeParse(spec);
  if (!res.success) throw new PolicyError(issuesToFieldErrors(res.error.issues));
  if (id !== null && res.data.id !== id)
    throw new PolicyError([{ field: "id", reason: `must match the path (${id})` }]);
  return { id: res.data.id, spec: res.data };
}

const LimitsFile = z.strictObject({
  workspace: z.string().default("default"),
  budgets: z.array(z.unknown()).default([]),
  rate_limits: z.array(z.unknown()).default([]),
  agents: z.record(z.string(), z.unknown()).default({}),
});

/** Reads a limits file (YAML/JSON); any invalid entry fails the whole file, naming it. */
export function loadLimitsFile(path: string): { workspace: string; entries: PolicyEntry[] } {
  const doc = LimitsFile.safeParse(readYamlFile(path, "limits file"));
  if (!doc.success)
    throw new ConfigFileError(
      `${path}: ${doc.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  const entries: PolicyEntry[] = [];
  const add = (kind: PolicyKind, where: string, id: string | null, spec: unknown) => {
    try {
      const v = validatePolicy(kind, id, spec);
      entries.push({ kind, ...v, source: "file", updated_at: null, updated_by: null });
    } catch (e) {
      throw new ConfigFileError(`${path}: ${where}: ${(e as Error).message}`);
    }
  };
  for (const [i, b] of doc.data.budgets.entries()) add("budget", `budgets[${i}]`, null, b);
  for (const [i, r] of doc.data.rate_limits.entries()) add("rate_limit", `rate_limits[${i}]`, null, r);
  for (const [type, c] of Object.entries(doc.data.agents)) add("agent", `agents.${type}`, type, c);
  const seen = new Set<string>();
  for (const e of entries) {
    const k = `${e.kind}:${e.id}`;
    if (seen.has(k)) throw new ConfigFileError(`${path}: ${e.kind} ${e.id} is defined twice`);
    seen.add(k);
  }
  return { workspace: doc.data.workspace, entries };
}

/**
 * Every budget, rate limit and agent ceiling in force, per workspace: the limits file's (read-only through
 * the API) plus the API's (stored, every change audited). Compiled once per change, read on every call.
 */
export class PolicyRegistry {
  readonly #entries = new Map<string, Map<string, PolicyEntry>>();
  readonly #compiled = new Map<string, WorkspacePolicies>();
  /** Counts the API changes made here; a refresh keeps those made while it read the store (#changedAt). */
  #changes = 0;
  /** The change count at each policy's last change here, until the refresh that read after it. */
  readonly #changedAt = new Map<string, number>();
  /** Told of each budget new here as it comes into force, before any call is counted against it. */
  readonly #budgetListeners: ((ws: string, id: string) => void)[] = [];

  private constructor(
    private readonly store: LimitsStateStore,
    private filePath: string | null,
  ) {}

  static async open(store: LimitsStateStore, filePath: string | null): Promise<PolicyRegistry> {
    const r = new PolicyRegistry(store, filePath);
    await r.refresh();
    if (filePath) r.reloadFile();
    return r;
  }

  /** Listens for the budgets to seed (see #toSeed), told as soon as the new spec is in force here. */
  onBudgetToSeed(listener: (ws: string, id: string) => void): void {
    this.#budgetListeners.push(listener);
  }

  /**
   * Whether a budget now in force here is to be seeded: new here, or with its buckets changed since
   * (`was`: its bucketing before; undefined when it had none here). Its listeners are told at once.
   */
  #toSeed(ws: string, id: string, spec: unknown, was: string | undefined): boolean {
    if (was !== undefined && was === bucketing(spec)) return false;
    for (const listener of this.#budgetListeners) listener(ws, id);
    return true;
  }

  /**
   * Re-reads the API's policies from the store, where another replica may have changed them (a shared
   * store); returns the budgets to seed: new here, or whose buckets changed (window, time zone, scope).
   * The limits file's entries are kept as they are.
   */
  async refresh(): Promise<{ workspace: string; id: string }[]> {
    const readFrom = this.#changes;
    const rows = await this.store.listPolicies();
    // A change made here while the rows were read may be missing from them: it stays as it is here.
    const changedSince = (ws: string, key: string) =>
      (this.#changedAt.get(inWorkspace(ws, key)) ?? 0) > readFrom;
    const known = new Map<string, string>(); // budgets here, with their bucketing
    for (const [ws, m] of this.#entries) {
      for (const [k, e] of m)
        if (e.source === "api") {
          if (e.kind === "budget") known.set(inWorkspace(ws, e.id), bucketing(e.spec));
          if (!changedSince(ws, k)) m.delete(k);
        }
      this.#compiled.delete(ws);
    }
    for (const [k, at] of this.#changedAt) if (at <= readFrom) this.#changedAt.delete(k);
    const added: { workspace: string; id: string }[] = [];
    for (const row of rows) {
      if (changedSince(row.workspace_id, `${row.kind}:${row.id}`)) continue;
      if (this.get(row.workspace_id, row.kind, row.id)?.source === "file") continue;
      this.#set(row.workspace_id, {
        kind: row.kind,
        id: row.id,
        spec: row.spec,
        source: "api",
        updated_at: row.updated_at,
        updated_by: row.updated_by,
      });
      const was = known.get(inWorkspace(row.workspace_id, row.id));
      if (row.kind === "budget" && this.#toSeed(row.workspace_id, row.id, row.spec, was))
        added.push({ workspace: row.workspace_id, id: row.id });
    }
    return added;
  }

  /**
   * Re-reads the limits file; a broken file (or one that clashes with the API's entries) throws and the
   * previous entries stay in force. Returns the entries read and the budgets to seed: new, or whose
   * buckets changed (window, time zone, scope).
   */
  reloadFile(): { entries: number; newBudgets: { workspace: string; id: string }[] } {
    if (!this.filePath) return { entries: 0, newBudgets: [] };
    const { workspace, entries } = loadLimitsFile(this.filePath);
    for (const e of entries)
      if (this.get(workspace, e.kind, e.id)?.source === "api")
        throw new ConfigFileError(`${this.filePath}: ${e.kind} ${e.id} is also set through the API`);
    const known = new Map<string, string>(); // budgets here, with their bucketing
    for (const [ws, m] of this.#entries) {
      for (const [k, e] of m)
        if (e.source === "file") {
          if (e.kind === "budget") known.set(inWorkspace(ws, e.id), bucketing(e.spec));
          m.delete(k);
        }
      this.#compiled.delete(ws);
    }
    for (const e of entries) this.#set(workspace, e);
    const newBudgets = entries
      .filter(
        (e) =>
          e.kind === "budget" &&
          this.#toSeed(workspace, e.id, e.spec, known.get(inWorkspace(workspace, e.id))),
      )
      .map((e) => ({ workspace, id: e.id }));
    return { entries: entries.length, newBudgets };
  }

  workspaces(): string[] {
    return [...this.#entries.keys()];
  }

  forWorkspace(ws: string): WorkspacePolicies {
    const hit = this.#compiled.get(ws);
    if (hit) return hit;
    const m = this.#entries.get(ws);
    if (!m) return EMPTY;
    const compiled: WorkspacePolicies = { budgets: [], rates: [], agents: new Map() };
    for (const e of m.values()) {
      if (e.kind === "budget") compiled.budgets.push(compileBudget(BudgetSchema.parse(e.spec)));
      else if (e.kind === "rate_limit") compiled.rates.push(RateLimitSchema.parse(e.spec));
      else compiled.agents.set(e.id, compileCeilings(AgentCeilingsSchema.parse(e.spec)));
    }
    this.#compiled.set(ws, compiled);
    return compiled;
  }

  list(ws: string, kind: PolicyKind): PolicyEntry[] {
    return [...(this.#entries.get(ws)?.values() ?? [])]
      .filter((e) => e.kind === kind)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  get(ws: string, kind: PolicyKind, id: string): PolicyEntry | null {
    return this.#entries.get(ws)?.get(`${kind}:${id}`) ?? null;
  }

  /**
   * Creates or replaces an API policy (validated, stored, audited). `created`: the store had none of this
   * id (a refresh may have brought it here meanwhile); `newHere`: this process had none, so a new budget's
   * counters are to be seeded here (once: a refresh that brought it seeded them); `seed`: a budget to seed
   * here, new or with its buckets changed (window, time zone, scope).
   */
  async put(
    ws: string,
    kind: PolicyKind,
    id: string | null,
    spec: unknown,
    actor: string,
  ): Promise<{ entry: PolicyEntry; created: boolean; newHere: boolean; seed: boolean }> {
    const v = validatePolicy(kind, id, spec);
    this.#refuseFileEntry(ws, kind, v.id);
    const now = Date.now();
    const before = await this.store.putPolicy({
      workspace_id: ws,
      kind,
      id: v.id,
      spec: v.spec,
      updated_at: now,
      updated_by: actor,
    });
    const entry: PolicyEntry = { kind, ...v, source: "api", updated_at: now, updated_by: actor };
    const prior = this.get(ws, kind, v.id);
    this.#set(ws, entry);
    this.#changed(ws, `${kind}:${v.id}`);
    const seed =
      kind === "budget" && this.#toSeed(ws, v.id, v.spec, prior ? bucketing(prior.spec) : undefined);
    return { entry, created: before === null, newHere: prior === null, seed };
  }

  async delete(ws: string, kind: PolicyKind, id: string, actor: string): Promise<boolean> {
    this.#refuseFileEntry(ws, kind, id);
    const before = await this.store.deletePolicy(ws, kind, id, actor);
    this.#entries.get(ws)?.delete(`${kind}:${id}`);
    this.#compiled.delete(ws);
    this.#changed(ws, `${kind}:${id}`);
    return before !== null;
  }

  #changed(ws: string, key: string): void {
    this.#changedAt.set(inWorkspace(ws, key), ++this.#changes);
  }

  #refuseFileEntry(ws: string, kind: PolicyKind, id: string): void {
    if (this.get(ws, kind, id)?.source === "file")
      throw new PolicyError(
        [
          {
            field: "id",
            reason: `${kind} ${id} is defined in the limits file ${this.filePath}; change it there`,
          },
        ],
        409,
      );
  }

  #set(ws: string, e: PolicyEntry): void {
    let m = this.#entries.get(ws);
    if (!m) {
      m = new Map();
      this.#entries.set(ws, m);
    }
    m.set(`${e.kind}:${e.id}`, e);
    this.#compiled.delete(ws);
  }
}
