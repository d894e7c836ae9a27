import { isInferenceKind } from "@tollgate/core";
import type { TraceSpan } from "../../store/types.js";
import { spanEventId } from "./event-id.js";
import { kindAsSent } from "./genai-mapping.js";
import { reportsTokens } from "./genai-usage.js";
import type { AttrMap, DecodedExport, DecodedSpan } from "./spans.js";

/** Why a span is not priced although it may report usage: the metadata entry it is stored with. */
export type Uncounted = readonly [key: string, value: string];

export const WRAPPER: Uncounted = ["tollgate.wrapper", "usage reported by descendant spans"];

/**
 * The spans of an export whose usage is counted on another span, so that a call is priced once however its
 * spans are split across exports, whichever comes first:
 * - a wrapper (a framework span around the client call, re-stating its usage): a span with a descendant
 *   (same trace, linked through parent ids) that reports token counts, in this export or `stored` by an
 *   earlier one (children end, and are exported, before their parents);
 * - a late call: a span reporting tokens below a span stored as a priced call, which is then its wrapper,
 *   stored first (an export retried late, or two in flight at once) and priced while the call was not
 *   there to see. The store keeps what it stored first, so that one stays the priced one. A wrapper
 *   stored unpriced (its model has no price, as a framework's alias may not) counted no money: the call
 *   below it is priced, as it is when both come in one export.
 * A span the store holds as a priced call (a retry's) is neither: it is mapped as it was stored.
 * Neither reaches past a tool or agent span: a model call above one (Google ADK's call_llm stays the
 * current span while the tools its model asked for, and the agent it hands over to, run) is a call of its
 * own, and the calls made within the tool or agent are theirs, not re-stated by it.
 * `stored`: what an earlier export of these traces stored (storedRelatives); only spans stored by this
 * route are read, since theirs is the kind and usage_raw the mapping gave.
 * `refused`: spans of the export that are refused when priced. Stored nowhere, their usage is counted
 * nowhere: they make no span above them a wrapper (it would go unpriced with them), though they link it
 * to the spans below them.
 */
export function uncountedSpans(
  req: DecodedExport,
  stored: readonly TraceSpan[],
  refused: ReadonlySet<DecodedSpan> = new Set(),
): Map<DecodedSpan, Uncounted> {
  const nodes = new Map<string, Node>();
  for (const s of stored)
    if (s.trace_id && s.span_id && s.event_id === spanEventId(s.trace_id, s.span_id)) {
      const tokens =
        typeof s.usage_raw === "object" && s.usage_raw !== null && reportsTokens(s.usage_raw as AttrMap);
      nodes.set(`${s.trace_id}/${s.span_id}`, {
        traceId: s.trace_id,
        spanId: s.span_id,
        parentSpanId: s.parent_span_id ?? "",
        tokens,
        restated: tokens,
        // A call stored unpriced (a model without a price) counted nothing: the call below it costs.
        counted: tokens && isInferenceKind(s.kind) && s.priced,
        bounds: BOUNDS.has(s.kind),
      });
    }
  const inExport: [DecodedSpan, string][] = [];
  for (const rs of req)
    for (const span of rs.spans) {
      const key = `${span.traceId}/${span.spanId}`;
      const kind = kindAsSent(span, rs.resource);
      const tokens = reportsTokens(span.attributes);
      const before = nodes.get(key);
      // The export's copy says how the spans link; a stored copy (a retry) whether it was priced. Its
      // usage is restated above it if any copy not refused reports it (the store keeps the first one).
      nodes.set(key, {
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId,
        tokens,
        restated: (tokens && !refused.has(span)) || (before?.restated ?? false),
        counted: before?.counted ?? false,
        bounds: BOUNDS.has(kind),
      });
      inExport.push([span, key]);
    }
  const parentOf = (n: Node) => (n.parentSpanId ? nodes.get(`${n.traceId}/${n.parentSpanId}`) : undefined);

  const below = new Set<Node>();
  // A tool or agent span reporting tokens sums up the calls within it: nothing above re-states them.
  for (const n of nodes.values())
    if (n.restated && !n.bounds)
      // Stops after a tool or agent span, and at a node already marked (its ancestors are too, up to the
      // next tool or agent span), which also ends any cycle.
      for (let p = parentOf(n); p && !below.has(p); p = p.bounds ? undefined : parentOf(p)) below.add(p);

  // The nearest priced ancestor of each node walked (null: none), so shared ancestors are walked once.
  const pricedAbove = new Map<Node, Node | null>();
  const pricedAncestor = (n: Node): Node | null => {
    const path = new Set<Node>();
    let found: Node | null = null;
    for (let p = parentOf(n); p && !path.has(p); p = parentOf(p)) {
      const known = pricedAbove.get(p);
      if (known !== undefined) {
        found = known;
        break;
      }
      if (p.counted) {
        found = p;
        break;
      }
      path.add(p);
      if (p.bounds) break;
    }
    for (const p of path) pricedAbove.set(p, found);
    return found;
  };

  const out = new Map<DecodedSpan, Uncounted>();
  for (const [span, key] of inExport) {
    const n = nodes.get(key)!;
    // Stored priced already (a retry): mapped as the store holds it, priced, though a call stored below it
    // since would make it a wrapper (that call is counted on it). Charged as a duplicate when the write
    // that stored it failed (SpendGuard.doubt), it must cost what the stored copy does, not nothing.
    if (n.counted) continue;
    if (below.has(n)) out.set(span, WRAPPER);
    // A tool or agent span's tokens are its calls', never the model call's above it (see `below`).
    else if (n.tokens && !n.bounds) {
      const priced = pricedAncestor(n);
      if (priced) out.set(span, ["tollgate.usage_counted_on", priced.spanId]);
    }
  }
  return out;
}

interface Node {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  /** Reports token counts. */
  tokens: boolean;
  /** Reports token counts and is stored, or will be: what makes its ancestors wrappers. */
  restated: boolean;
  /** Stored as a priced call (priced=true: an unpriced one counted no money). */
  counted: boolean;
  /** A tool or agent span: the calls below it are not re-stated by the model spans above it. */
  bounds: boolean;
}

const BOUNDS: ReadonlySet<string> = new Set(["tool", "agent"]);
