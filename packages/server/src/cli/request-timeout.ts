import { Agent, fetch } from "undici";
import { CliError } from "./common.js";

/** A command's silence limit unless it has its own (purge) or --timeout / TOLLGATE_TIMEOUT says. */
export const DEFAULT_TIMEOUT_SECONDS = 30;
/** Node fires a timer set past 2^31 - 1 ms after 1 ms: a larger value would give up at once. */
const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
const SECONDS = /^(\d+\.?\d*|\.\d+)$/;

/**
 * How long a command lets a running server stay silent on one request, in ms: --timeout, else
 * TOLLGATE_TIMEOUT (empty is unset, as for every TOLLGATE_* setting), else the command's default (30 s;
 * longer for one the server answers only once a long job is done). Seconds above 0; anything else is a
 * usage error naming where it came from.
 */
export function requestTimeoutFrom(
  flag: string | undefined,
  env = process.env,
  defaultSeconds = DEFAULT_TIMEOUT_SECONDS,
): number {
  const raw = flag ?? (env.TOLLGATE_TIMEOUT || undefined);
  if (raw === undefined) return defaultSeconds * 1000;
  const seconds = Number(raw);
  if (!SECONDS.test(raw) || seconds <= 0 || seconds > MAX_SECONDS)
    throw new CliError(
      `${flag === undefined ? "TOLLGATE_TIMEOUT" : "--timeout"} must be a number of seconds above 0, at most ${MAX_SECONDS}, got ${JSON.stringify(raw)}`,
      2,
    );
  return Math.ceil(seconds * 1000);
}

/** What the CLI sends: a method, its headers and a JSON body if any. */
export interface ApiRequest {
  method: string;
  headers: Record<string, string>;
  body?: string;
}

/**
 * undici's own headers and body timeouts (5 minutes by default) turned off: the silence timer below is
 * the only limit, so a --timeout above 300 s is kept, and no silence is said as an unreachable server.
 */
const untimed = new Agent({ headersTimeout: 0, bodyTimeout: 0 });

/**
 * fetch, failing with `silent()` once the server has sent nothing for `ms`: neither its answer's headers
 * nor the next part of its body. The timeout is for silence, not length: an answer that keeps coming is
 * never cut off, while a server that accepted the connection and stopped answering (SIGSTOPped, hung) is
 * not waited for as long as undici's own timeouts would (5 minutes).
 */
export async function fetchUntilSilent(
  url: string,
  init: ApiRequest,
  ms: number,
  silent: () => Error,
): Promise<Response> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const restart = () => {
    clearTimeout(timer);
    timer = setTimeout(() => abort.abort(silent()), ms);
  };
  restart();
  let res: Awaited<ReturnType<typeof fetch>>;
  try {
    // undici's fetch, as the dispatcher is undici's (Node's own fetch is another undici), rejects with
    // silent()'s error once aborted.
    res = await fetch(url, { ...init, signal: abort.signal, dispatcher: untimed });
  } catch (e) {
    clearTimeout(timer);
    throw e;
  }
  const answer = { status: res.status, statusText: res.statusText, headers: [...res.headers] };
  if (!res.body) {
    clearTimeout(timer);
    return new Response(null, answer);
  }
  const body = res.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        restart();
        controller.enqueue(chunk);
      },
      flush: () => clearTimeout(timer),
    }),
  );
  return new Response(body, answer);
}
