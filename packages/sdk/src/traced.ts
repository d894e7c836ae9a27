import { AsyncLocalStorage } from "node:async_hooks";
import { uuidv7 } from "@tollgate/core";
import { currentAgentRun } from "./agent-run.js";
import { type Attribution, mergeAttribution } from "./attribution.js";
import { childSpan, currentScope, runInSpan } from "./context.js";
import { sinkOf, type WrapOptions } from "./setup.js";

export interface TracedOptions extends Pick<WrapOptions, "exporter" | "sink"> {
  /** What the span does ("plan", "search-docs"); stored as metadata `span.name`. */
  name: string;
  /** agent (a loop that makes calls), tool (a function the model asked for) or other. Default other. */
  kind?: "agent" | "tool" | "other";
  metadata?: Readonly<Record<string, string>>;
  /** Attribution for this span and every call inside it. */
  attribution?: Attribution;
}

/**
 * Runs `fn` as a span of the current trace (a new trace at the top): LLM calls and spans inside it
 * become its children, and it is recorded itself (kind agent/tool/other, never priced) when it ends,
 * with its duration and whether it threw. Returns what `fn` returns (a provider SDK's APIPromise itself). A
 * generator `fn` returns (an `async function*` that streams an answer), or its promise resolves to, is the
 * span's while it is iterated: each step runs inside it, and the span ends when the generator finishes,
 * throws or is closed.
 */
export function traced<T>(fn: () => T, options: TracedOptions): T {
  const outer = currentScope();
  const attribution = options.attribution
    ? mergeAttribution(outer.attribution, options.attribution)
    : outer.attribution;
  const ids = childSpan(outer);
  // Named by the agent run it is in, as the run's calls are: the agent-runs rollup counts its tool spans so.
  const run = currentAgentRun();
  const startMs = Date.now();
  const start = performance.now();
  const sink = sinkOf(options);
  const end = (error: unknown) => {
    const failed = error !== undefined;
    sink({
      event_id: uuidv7(startMs),
      ...ids,
      ts_start: startMs,
      ts_end: startMs + Math.round(performance.now() - start),
      kind: options.kind ?? "other",
      status: failed ? "error" : "ok",
      error_type: failed ? errorName(error) : null,
      ...(run ? { agent_run_id: run.id, agent_type: run.type } : {}),
      ...attribution,
      tags: [...attribution.tags],
      metadata: { ...attribution.metadata, ...options.metadata, "span.name": options.name },
    });
  };
  const inSpan = <R>(run: () => R): R => runInSpan({ ...outer, attribution }, ids.trace_id, ids.span_id, run);
  let result: T;
  try {
    result = inSpan(fn);
  } catch (e) {
    end(e ?? "thrown");
    throw e;
  }
  if (isApiPromise(result)) return endWhenRead(result, end);
  // Its body runs in whoever's context calls next(): each step is put back in the span's (agent run and all).
  const iterated = <G extends AnyGenerator>(gen: G): G =>
    endWhenIterated(gen, inSpan(AsyncLocalStorage.snapshot), end);
  if (isGenerator(result)) return iterated(result);
  if (result instanceof Promise)
    return result.then(
      // An async function that returns a generator (its set-up awaited first): the span is the generator's.
      (value) => {
        if (isGenerator(value)) return iterated(value);
        end(undefined);
        return value;
      },
      (e) => {
        end(e ?? "rejected");
        throw e;
      },
    ) as T;
  end(undefined);
  return result;
}

/** The provider SDKs' APIPromise (openai, @anthropic-ai/sdk): lazy, its body parsed only when read. */
interface ApiPromiseLike {
  parse(): Promise<unknown>;
  asResponse(): Promise<Response>;
}

function isApiPromise(value: unknown): value is ApiPromiseLike {
  const p = value as ApiPromiseLike | null;
  return value instanceof Promise && typeof p?.parse === "function" && typeof p.asResponse === "function";
}

/**
 * Returns the APIPromise itself, so the app keeps `withResponse()` / `asResponse()` (`then` would make a plain
 * Promise). The span ends as the SDKs' own tracing ends a call's: with the parse (then, withResponse), or with the
 * raw Response when that is read before any parse.
 */
function endWhenRead<P extends ApiPromiseLike>(p: P, end: (error: unknown) => void): P {
  let ended = false;
  const settle = <V>(read: Promise<V>): Promise<V> =>
    read.then(
      (value) => {
        if (!ended) end(undefined);
        ended = true;
        return value;
      },
      (e) => {
        if (!ended) end(e ?? "rejected");
        ended = true;
        throw e;
      },
    );
  const parse = p.parse.bind(p);
  const asResponse = p.asResponse.bind(p);
  let parsing: Promise<unknown> | null = null;
  p.parse = () => {
    parsing ??= settle(parse());
    return parsing;
  };
  // withResponse() reads both: the parse ends the span then.
  p.asResponse = () => (parsing ? asResponse() : settle(asResponse()));
  return p;
}

type AnyGenerator = Generator<unknown, unknown, unknown> | AsyncGenerator<unknown, unknown, unknown>;

/** A generator object (sync or async): what a `function*` or `async function*` returns. */
function isGenerator(value: unknown): value is AnyGenerator {
  const tag = Object.prototype.toString.call(value);
  return tag === "[object Generator]" || tag === "[object AsyncGenerator]";
}

type Step = IteratorResult<unknown, unknown>;

/**
 * Returns the generator itself, each of its steps (`next`, `return`, `throw`: what for…of and for await…of
 * call, a `break` included) run `inSpan`; the span ends at the step that finishes it, or that throws.
 */
function endWhenIterated<G extends AnyGenerator>(
  gen: G,
  inSpan: <R>(run: () => R) => R,
  end: (error: unknown) => void,
): G {
  let ended = false;
  const settle = (error: unknown) => {
    if (!ended) end(error);
    ended = true;
  };
  const stepped = (step: Step): Step => {
    if (step.done) settle(undefined);
    return step;
  };
  for (const name of ["next", "return", "throw"] as const) {
    const own = (gen[name] as (arg?: unknown) => Step | Promise<Step>).bind(gen);
    Object.defineProperty(gen, name, {
      configurable: true,
      writable: true,
      value: (arg?: unknown) => {
        let step: Step | Promise<Step>;
        try {
          step = inSpan(() => own(arg));
        } catch (e) {
          settle(e ?? "thrown");
          throw e;
        }
        if (!(step instanceof Promise)) return stepped(step);
        return step.then(stepped, (e) => {
          settle(e ?? "rejected");
          throw e;
        });
      },
    });
  }
  return gen;
}

function errorName(e: unknown): string {
  const name = (e as { name?: unknown } | null)?.name;
  return typeof name === "string" && name !== "" ? name.slice(0, 256) : "error";
}
