import { reportsTokens } from "./genai-usage.js";
import type { DecodedExport, DecodedSpan } from "./spans.js";

/**
 * The spans of one export that have a descendant (same trace, linked through parent ids present in this
 * export) reporting token counts. An inference-looking span among them is a wrapper (a framework span
 * around the client call, re-stating its usage) and must not be priced a second time. Spans whose
 * children arrive in another export cannot be seen here.
 */
export function spansWithUsageBelow(req: DecodedExport): Set<DecodedSpan> {
  const byId = new Map<string, DecodedSpan>();
  for (const rs of req) for (const s of rs.spans) byId.set(`${s.traceId}/${s.spanId}`, s);
  const marked = new Set<DecodedSpan>();
  for (const rs of req)
    for (const s of rs.spans) {
      if (!s.parentSpanId || !reportsTokens(s.attributes)) continue;
      // Stops at a span already marked (its ancestors are too), which also ends any cycle.
      for (
        let p = byId.get(`${s.traceId}/${s.parentSpanId}`);
        p && !marked.has(p);
        p = p.parentSpanId ? byId.get(`${p.traceId}/${p.parentSpanId}`) : undefined
      )
        marked.add(p);
    }
  return marked;
}
