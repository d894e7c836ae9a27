/**
 * A backend named by a flag or the environment (ClickHouse, Redis) that cannot be reached or set up at
 * start: the operator's to fix, so the CLI says which, where and why, without a stack trace.
 */
export class BackendUnreachableError extends Error {}

/**
 * A backend's URL, from a flag or the environment, that is not one it takes (`--clickhouse localhost:8123`,
 * no http://): the operator's to fix, a usage error as a malformed flag is, said without a stack trace.
 */
export class BackendUrlError extends Error {}
