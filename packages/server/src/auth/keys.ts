import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Recent } from "@tollgate/core";
import type { ApiKeyRecord, KeyDefaults, KeyStore, Role } from "../store/types.js";
import { withTimeout } from "../with-timeout.js";

export interface Principal {
  workspaceId: string;
  role: Role | "root";
  keyId: string;
  /** Attribution the gateway applies to this key's calls. */
  defaults?: KeyDefaults;
}

export function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** Keys look like `tg_<role>_<id>_<secret>`: the role and id are readable, only the hash is stored. */
export function generateKey(role: Role): { id: string; key: string } {
  const id = randomBytes(6).toString("hex");
  return { id, key: `tg_${role}_${id}_${randomBytes(24).toString("base64url")}` };
}

const WORKSPACE_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** The roles whose keys the gateway takes in x-tollgate-key (root: the local admin token), applying their defaults. */
export const GATEWAY_KEY_ROLES: ReadonlySet<string> = new Set(["gateway", "admin", "root"]);

export class KeyError extends Error {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
  }
}

export async function createKey(
  store: KeyStore,
  opts: { workspace: string; role: Role; label?: string | null; defaults?: KeyDefaults },
): Promise<{ key: string; record: ApiKeyRecord }> {
  if (!WORKSPACE_RE.test(opts.workspace))
    throw new KeyError(
      "workspace",
      "must be 1-64 lowercase letters, digits, _ or -, starting with a letter or digit",
    );
  // Only the gateway applies them: on a key it does not take they would be kept, shown, and never applied.
  if (!GATEWAY_KEY_ROLES.has(opts.role) && Object.keys(opts.defaults ?? {}).length)
    throw new KeyError("defaults", `are attribution for gateway calls, which a ${opts.role} key cannot make`);
  await store.ensureWorkspace(opts.workspace);
  const { id, key } = generateKey(opts.role);
  const record: ApiKeyRecord = {
    id,
    workspace_id: opts.workspace,
    role: opts.role,
    label: opts.label ?? null,
    created_at: Date.now(),
    defaults: opts.defaults ?? {},
  };
  await store.insertKey({ ...record, hash: hashKey(key) });
  return { key, record };
}

/**
 * Lookups kept; past this many the least recently used goes, one at a time: emptied whole, a flood of
 * unknown keys had every caller's key looked up again at once.
 */
const MAX_CACHED_KEYS = 10_000;

interface Lookup {
  p: Principal | null;
  until: number;
  /** Kept through a lookup the store failed (down, silent): the store's last answer, not a fresh one. */
  kept?: true;
}

/** How long a key's lookup may take before the store counts as silent (KeyLookupFailed). */
const LOOKUP_MS = 5_000;

/** A key the store could not be asked about (down, or silent past the lookup's time): neither valid nor not. */
export class KeyLookupFailed extends Error {
  constructor(cause: unknown) {
    super(`the key cannot be checked now: the store did not answer (${(cause as Error).message})`);
  }
}

/**
 * Resolves bearer keys to principals. Lookups are cached briefly so the ingest hot path does not
 * queue behind store writes; `rootToken` is the local-admin token of this server process.
 */
export class KeyResolver {
  #cache = new Recent<Lookup>({ max: MAX_CACHED_KEYS });
  /** Bumped by invalidate(): a lookup that began before a revocation must not cache what it read. */
  #generation = 0;
  /**
   * Lookups under way, one per key hash: a call that comes meanwhile waits for it, rather than each sending
   * a store query of its own (a silent store's 5 s wait, per call, piled up its queries). Emptied with the
   * cache: a call after a revocation does not take the answer of a lookup begun before it.
   */
  #pending = new Map<string, Promise<Principal | null>>();

  constructor(
    private readonly store: KeyStore,
    private readonly rootToken: string | null,
    private readonly ttlMs = 30_000,
    private readonly lookupMs = LOOKUP_MS,
  ) {}

  /** Forget cached lookups, e.g. after a revocation, so it takes effect at once. */
  invalidate(): void {
    this.#generation++;
    this.#cache = new Recent({ max: MAX_CACHED_KEYS });
    this.#pending = new Map();
  }

  async resolve(key: string): Promise<Principal | null> {
    if (this.rootToken && safeEqual(key, this.rootToken))
      return { workspaceId: "default", role: "root", keyId: "local-admin" };
    const hash = hashKey(key);
    const hit = this.#cache.touch(hash);
    const now = Date.now();
    if (hit && hit.until > now) return hit.p;
    const pending = this.#pending;
    let lookup = pending.get(hash);
    if (!lookup) {
      lookup = this.#lookUp(hash, hit, now).finally(() => pending.delete(hash));
      pending.set(hash, lookup);
    }
    if (hit?.kept) {
      // The store failed its last lookup: its answer stands at once while the next is tried, rather than
      // every call with the key waiting out the lookup's time (5 s) once a cache period in an outage.
      lookup.catch(() => {});
      return hit.p;
    }
    return lookup;
  }

  /** The store's answer for a key not cached (or cached past its time, `hit`), cached in turn. */
  async #lookUp(hash: string, hit: Lookup | undefined, now: number): Promise<Principal | null> {
    const generation = this.#generation;
    let rec: ApiKeyRecord | null;
    try {
      rec = await withTimeout(this.store.findKeyByHash(hash), this.lookupMs, "no answer");
    } catch (e) {
      // The store down or silent: a key it answered for before keeps that answer for another while (calls go
      // on, their records spooled), rather than every call with it failing; one it never answered for cannot be.
      if (!hit || generation !== this.#generation) throw new KeyLookupFailed(e);
      this.#cache.set(hash, { p: hit.p, until: now + this.ttlMs, kept: true });
      return hit.p;
    }
    const p = rec
      ? { workspaceId: rec.workspace_id, role: rec.role, keyId: rec.id, defaults: rec.defaults }
      : null;
    if (generation !== this.#generation) return p; // read before a revocation: answers this request only
    this.#cache.set(hash, { p, until: now + this.ttlMs });
    return p;
  }
}

/** Constant-time comparison, so the root token cannot be guessed byte by byte from response times. */
function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
