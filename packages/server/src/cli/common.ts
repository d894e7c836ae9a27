import { dataDirFrom, limitsFrom, pricebookFrom, type RuntimeOptions } from "../config.js";
import type { ClientOptions, Reply } from "./client.js";
import { requestTimeoutFrom } from "./request-timeout.js";

export interface GlobalOpts {
  dataDir?: string;
  pricebook?: string;
  limits?: string;
  redis?: string;
  clickhouse?: string;
  timeout?: string;
}

export function runtimeOptions(g: GlobalOpts): RuntimeOptions {
  return {
    dataDir: dataDirFrom(g.dataDir),
    pricebookPath: pricebookFrom(g.pricebook),
    limitsPath: limitsFrom(g.limits),
    redisUrl: g.redis ?? null,
    clickhouseUrl: g.clickhouse ?? null,
  };
}

/**
 * The runtime options, and the silence a running server is allowed on each request (--timeout, else the
 * command's `defaultSeconds`).
 */
export function clientOptions(g: GlobalOpts, defaultSeconds?: number): ClientOptions {
  return {
    ...runtimeOptions(g),
    requestTimeoutMs: requestTimeoutFrom(g.timeout, process.env, defaultSeconds),
  };
}

/** A failed command: message for humans, exit code for scripts. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/**
 * The answer's body, or a CliError: a value the server refuses (400) came from the command line, so it is
 * a usage error (exit 2), as the CLI's own checks are. `flags` names the flag each API field came from
 * (warn_at: "--warn-at"; a nested one by its path, defaults.customer_id: "--customer"): the message then
 * says which flag to fix.
 */
export function expectOk(reply: Reply, what: string, flags: Record<string, string> = {}): Reply["body"] {
  if (reply.status >= 200 && reply.status < 300) return reply.body;
  const e = reply.body?.error;
  const param = typeof e?.param === "string" ? e.param : "";
  const field = [param, param.split(".")[0]!].find((f) => Object.hasOwn(flags, f));
  const flag = reply.status === 400 && field !== undefined ? `${flags[field]}: ` : "";
  throw new CliError(
    `${what} failed (${reply.status}): ${flag}${e?.message ?? JSON.stringify(reply.body)}`,
    reply.status === 400 ? 2 : 1,
  );
}

/** The flag each query parameter of the analytics commands comes from (spend, rollup, explain, export, …). */
export const QUERY_FLAGS: Record<string, string> = {
  from: "--from",
  to: "--to",
  vs_from: "--vs-from",
  vs_to: "--vs-to",
  since: "--since",
  customer_id: "--customer",
  feature: "--feature",
  data_mode: "--data-mode",
  deployment: "--deployment",
  by: "--by",
  top: "--top",
  workspace: "--workspace",
};

/** An answer's `coverage` (query/coverage.ts). */
interface Coverage {
  raw_available_from: string | null;
  summary_available_from: string | null;
  truncated: boolean;
}

/** Says on stderr when part of an answer's window was purged (retention): a table alone reads as whole. */
export function noteCoverage(c: Coverage | undefined): void {
  if (!c?.truncated) return;
  const kept = [
    c.raw_available_from && `raw calls from ${c.raw_available_from}`,
    c.summary_available_from && `daily summaries from ${c.summary_available_from}`,
  ].filter(Boolean);
  process.stderr.write(
    `note: part of this window is past retention (${kept.join(", ")}): the figures are partial\n`,
  );
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
