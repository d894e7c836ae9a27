/**
 * A backend named by a flag or the environment (ClickHouse, Redis) that cannot be reached or set up at
 * start: the operator's to fix, so the CLI says which, where and why, without a stack trace.
 */
export class BackendUnreachableError extends Error {}
