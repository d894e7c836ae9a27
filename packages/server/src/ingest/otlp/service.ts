import type { FieldError } from "@tollgate/core";
import type { IngestService } from "../service.js";
import { mapSpan } from "./genai-mapping.js";
import type { DecodedExport } from "./spans.js";
import { spansWithUsageBelow } from "./wrappers.js";

/** OTLP's partial success: how many spans were refused, and why (empty when none were). */
export interface ExportResult {
  rejectedSpans: number;
  errorMessage: string;
}

interface Refusal {
  spanId: string;
  errors: FieldError[];
}

/** How many refusals the error message spells out; the count covers them all. */
const MAX_REASONS = 5;

/**
 * Maps every span of an export to a call record and stores the lot through IngestService (validated,
 * priced, idempotent by the span's event_id, counted against limits). Spans that fail the mapping or the
 * record's validation are refused and reported; the rest are stored together, or not at all when the
 * store fails (IngestService throws its 503, which exporters retry).
 */
export class OtlpIngest {
  constructor(private readonly ingest: IngestService) {}

  async export(workspaceId: string, req: DecodedExport): Promise<ExportResult> {
    const wrappers = spansWithUsageBelow(req);
    const items: Record<string, unknown>[] = [];
    const itemSpanIds: string[] = [];
    const refused: Refusal[] = [];
    for (const rs of req)
      for (const span of rs.spans) {
        const mapped = mapSpan(span, rs.resource, wrappers.has(span));
        if (mapped.ok) {
          items.push(mapped.input);
          itemSpanIds.push(span.spanId);
        } else
          refused.push({ spanId: span.spanId, errors: [{ field: mapped.field, reason: mapped.reason }] });
      }
    if (items.length) {
      const res = await this.ingest.ingest(workspaceId, items);
      for (const r of res.results)
        if (r.status === "rejected") refused.push({ spanId: itemSpanIds[r.index]!, errors: r.errors ?? [] });
    }
    return { rejectedSpans: refused.length, errorMessage: describe(refused) };
  }
}

function describe(refused: readonly Refusal[]): string {
  if (!refused.length) return "";
  const reasons = refused.slice(0, MAX_REASONS).map((r) => {
    const fields = r.errors.map((e) => `${e.field}: ${e.reason}`).join("; ");
    return `span ${JSON.stringify(r.spanId.slice(0, 32))}: ${fields}`;
  });
  const more = refused.length > MAX_REASONS ? `; and ${refused.length - MAX_REASONS} more` : "";
  return `${refused.length} span(s) refused: ${reasons.join(" | ")}${more}`;
}
