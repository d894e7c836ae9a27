import { resolve } from "node:path";
import type { ServerRole } from "./roles.js";

export const DEFAULT_PORT = 4242;

export interface RuntimeOptions {
  dataDir: string;
  pricebookPath: string | null;
  /** Run the store on its own thread (default: when built; see store/open-store.ts). */
  storeThread?: boolean;
  /** Budgets, rate limits and agent ceilings file (TOLLGATE_LIMITS). */
  limitsPath?: string | null;
  /** Redis for limits shared by many gateways (TOLLGATE_REDIS_URL); in-memory when absent. */
  redisUrl?: string | null;
  /** ClickHouse as the event store instead of the data dir's DuckDB file (TOLLGATE_CLICKHOUSE_URL). */
  clickhouseUrl?: string | null;
  /** What this process serves (roles.ts; `serve --role`, TOLLGATE_ROLE). Default `all`. */
  role?: ServerRole;
}

// An empty variable is unset here, as for every TOLLGATE_* setting: "" would be the working directory
// itself, or port 0 (a random one).
export function dataDirFrom(opt?: string): string {
  return resolve(opt ?? (process.env.TOLLGATE_DATA_DIR || ".tollgate"));
}

export function portFrom(opt?: string | number): number {
  const raw = opt ?? (process.env.TOLLGATE_PORT || DEFAULT_PORT);
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`invalid port ${raw}: use 0-65535`);
  return port;
}

export function limitsFrom(opt?: string): string | null {
  const p = opt ?? process.env.TOLLGATE_LIMITS;
  return p ? resolve(p) : null;
}

export function pricebookFrom(opt?: string): string | null {
  const p = opt ?? process.env.TOLLGATE_PRICEBOOK;
  return p ? resolve(p) : null;
}

/**
 * A whole-number setting from the environment: `fallback` when unset or empty, else a whole number from
 * 0 to `max` (`zeroMeans`, e.g. "off", is shown in the error), or an error that names the variable.
 */
export function wholeNumberFromEnv(
  env: NodeJS.ProcessEnv,
  name: string,
  { fallback, max, zeroMeans }: { fallback: number; max: number; zeroMeans?: string },
): number {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  if (!/^\d{1,9}$/.test(v) || Number(v) > max)
    throw new Error(
      `${name} must be a whole number from 0${zeroMeans ? ` (${zeroMeans})` : ""} to ${max}, got ${JSON.stringify(v)}`,
    );
  return Number(v);
}
