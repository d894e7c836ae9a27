import type { EventStore, TraceSpan } from "../../store/types.js";
import { spanEventId } from "./event-id.js";
import type { DecodedExport, DecodedSpan } from "./spans.js";

/** What OTLP ingest reads of the store. */
export type SpanStore = Pick<EventStore, "traceSpans" | "storedIds">;

/**
 * How long before a call its wrapper may have started and still be found, when the wrapper was stored
 * first: a wrapper lasts about as long as the model calls it wraps.
 */
const WRAPPER_LOOKBACK_MS = 3_600_000;

/**
 * How far a child's times may lie outside its parent's: OpenTelemetry JS takes a span's start from
 * Date.now() (whole milliseconds) and its end from the performance clock, so a call may start in the
 * millisecond after its wrapper ended; spans of two services read two clocks.
 */
const CLOCK_SLACK_MS = 1_000;

/**
 * The widest time range read at once. An export's spans end within seconds of each other, so one read
 * covers them; one whose clock is off by years costs a read of its own, not a read of the years between.
 */
const MAX_READ_MS = 2 * WRAPPER_LOOKBACK_MS;

const ROOT = /^0*$/;

/**
 * OTLP's SpanKind CLIENT: the span of the request itself, as GenAI client instrumentations make it (OTel's
 * GenAI conventions ask for it). Its children, if any, are the transport's: it wraps no model call, so
 * its descendants are not read. That read scanned the traces' rows of the export's time range for every
 * export, a cost paid by every span. Not every framework's wrapper is an INTERNAL span, though:
 * OpenLLMetry's LangChain (and LlamaIndex) model spans are CLIENT spans, and the client call below them,
 * when another instrumentation makes one too, reports the same usage. A CLIENT span that says it is a
 * framework's (frameworkSpan) is read for, as any other.
 */
const SPAN_KIND_CLIENT = 3;

/** Frameworks that name themselves as a model span's system (OpenLLMetry's LangChain: "Langchain"). */
const FRAMEWORK_SYSTEMS = /^(langchain|llama_?index|haystack|crewai|semantic_kernel)$/i;

/**
 * Whether a span bears a framework instrumentation's marks, and so may wrap a client call exported before
 * it: OpenLLMetry's (llm.request.type, its traceloop.* span attributes), or a system that is a framework.
 */
function frameworkSpan(s: DecodedSpan): boolean {
  const a = s.attributes;
  if (a["llm.request.type"] !== undefined) return true;
  for (const key of ["gen_ai.system", "gen_ai.provider.name"]) {
    const v = a[key];
    if (typeof v === "string" && FRAMEWORK_SYSTEMS.test(v)) return true;
  }
  // Looked up by name, not found by a scan of every attribute: this runs for every span of an export.
  return TRACELOOP_MARKS.some((key) => a[key] !== undefined);
}

/** The attributes OpenLLMetry's framework instrumentations set on their spans. */
const TRACELOOP_MARKS = [
  "traceloop.span.kind",
  "traceloop.entity.name",
  "traceloop.entity.path",
  "traceloop.workflow.name",
];

/** Whether earlier exports may hold calls `s` wraps: any span but a plain client call's (see above). */
const mayWrap = (s: DecodedSpan): boolean => s.kind !== SPAN_KIND_CLIENT || frameworkSpan(s);

interface Range {
  traceId: string;
  from: number;
  to: number;
}

/**
 * What earlier exports stored that may change how `spans` (the model calls of `req` that report usage)
 * are counted (uncountedSpans reads it):
 * - the descendants of those that may be wrappers (not plain CLIENT spans), which started within them: their
 *   traces read over their time range (its last WRAPPER_LOOKBACK_MS: a model call lasts minutes);
 * - their ancestors, looked for only when a span's nearest ancestor outside the export is stored (by id,
 *   an index lookup; rare, since parents end after their children): then the trace back
 *   WRAPPER_LOOKBACK_MS.
 */
export async function storedRelatives(
  store: SpanStore,
  workspaceId: string,
  req: DecodedExport,
  spans: readonly DecodedSpan[],
): Promise<TraceSpan[]> {
  const inExport = new Map<string, DecodedSpan>();
  for (const rs of req) for (const s of rs.spans) inExport.set(`${s.traceId}/${s.spanId}`, s);
  const within: Range[] = [];
  /** By the event id of a nearest ancestor outside the export: where to look for it. */
  const above = new Map<string, Range[]>();
  for (const s of spans) {
    const start = ms(s.startNs);
    const end = s.endNs ? ms(s.endNs) : start;
    // Its last WRAPPER_LOOKBACK_MS at most: a span's times are the client's word, and one claiming to
    // have lasted since 1970 would otherwise cost a read of the workspace's whole history.
    const from = Math.max(start, end - WRAPPER_LOOKBACK_MS) - CLOCK_SLACK_MS;
    if (mayWrap(s)) within.push({ traceId: s.traceId, from, to: end + CLOCK_SLACK_MS });
    const parent = ancestorOutside(s, inExport);
    if (parent === null) continue;
    const id = spanEventId(s.traceId, parent);
    const ranges = above.get(id) ?? [];
    ranges.push({ traceId: s.traceId, from: start - WRAPPER_LOOKBACK_MS, to: start + CLOCK_SLACK_MS });
    above.set(id, ranges);
  }
  const [below, storedParents] = await Promise.all([
    read(store, workspaceId, within),
    above.size ? store.storedIds(workspaceId, [...above.keys()]) : new Set<string>(),
  ]);
  if (!storedParents.size) return below;
  const late = [...storedParents].flatMap((id) => above.get(id)!);
  return [...below, ...(await read(store, workspaceId, late))];
}

/** The records of the ranges' traces over their time ranges (ends included), close ranges read together. */
async function read(store: SpanStore, workspaceId: string, ranges: Range[]): Promise<TraceSpan[]> {
  const out: TraceSpan[] = [];
  ranges.sort((a, b) => a.from - b.from);
  for (let i = 0; i < ranges.length; ) {
    const from = ranges[i]!.from;
    let to = ranges[i]!.to;
    const traces = new Set<string>();
    for (; i < ranges.length && (!traces.size || ranges[i]!.to - from <= MAX_READ_MS); i++) {
      traces.add(ranges[i]!.traceId);
      to = Math.max(to, ranges[i]!.to);
    }
    out.push(...(await store.traceSpans(workspaceId, [...traces], from, to + 1)));
  }
  return out;
}

/** The id of the span's nearest ancestor that is not in the export (null: none, the trace's root is). */
function ancestorOutside(span: DecodedSpan, inExport: ReadonlyMap<string, DecodedSpan>): string | null {
  const seen = new Set<DecodedSpan>();
  for (let s = span; !seen.has(s); ) {
    seen.add(s);
    if (ROOT.test(s.parentSpanId)) return null;
    const parent = inExport.get(`${s.traceId}/${s.parentSpanId}`);
    if (!parent) return s.parentSpanId;
    s = parent;
  }
  return null; // a cycle of parent ids within the export
}

const ms = (ns: bigint) => Number(ns / 1_000_000n);
