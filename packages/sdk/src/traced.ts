import { uuidv7 } from "@tollgate/core";
import { currentAgentRun } from "./agent-run.js";
import { type Attribution, mergeAttribution } from "./attribution.js";
import { childSpan, currentScope, runInSpan } from "./context.js";
import { ownContextHere } from "./own-context.js";
import { sinkOf, type WrapOptions } from "./setup.js";
import { type EndSpan, lastsWhileRead } from "./traced-reads.js";

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
 * with its duration and whether it threw. Returns what `fn` returns (a provider SDK's APIPromise itself).
 * What is read after `fn` returns (or its promise resolves to) is the span's while it is read
 * (lastsWhileRead): a generator (an `async function*` that streams an answer) or a provider SDK's stream
 * while iterated, each step inside the span, until it finishes, throws or is closed; an SDK stream helper
 * until it ends.
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
  let ended = false;
  const end: EndSpan = (error, atMs = performance.now()) => {
    if (ended) return;
    ended = true;
    const failed = error !== undefined;
    sink({
      event_id: uuidv7(startMs),
      ...ids,
      ts_start: startMs,
      ts_end: startMs + Math.round(atMs - start),
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
  // What is read later runs in whoever's context reads it: each step is put back in the span's (agent run and
  // all), the app's own context left the reader's.
  const stepInSpan = inSpan(ownContextHere);
  if (lastsWhileRead(result, stepInSpan, end)) return result;
  if (result instanceof Promise)
    return result.then(
      // An async function that returns what is read later (its set-up awaited first): the span is its.
      (value) => {
        if (!lastsWhileRead(value, stepInSpan, end)) end(undefined);
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

function errorName(e: unknown): string {
  const name = (e as { name?: unknown } | null)?.name;
  return typeof name === "string" && name !== "" ? name.slice(0, 256) : "error";
}
