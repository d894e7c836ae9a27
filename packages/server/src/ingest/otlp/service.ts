import type { FieldError } from "@tollgate/core";
import { ApiError } from "../../errors.js";
import type { TraceSpan } from "../../store/types.js";
import type { CheckedBatch, IngestService } from "../service.js";
import { isModelCall, mapSpan } from "./genai-mapping.js";
import { reportsTokens } from "./genai-usage.js";
import type { DecodedExport, DecodedSpan } from "./spans.js";
import { type SpanStore, storedRelatives } from "./stored-relatives.js";
import { TraceTurns } from "./trace-turns.js";
import { type Uncounted, uncountedSpans } from "./wrappers.js";

/** OTLP's partial success: how many spans were refused, and why (empty when none were). */
export interface ExportResult {
  rejectedSpans: number;
  errorMessage: string;
}

interface Refusal {
  span: DecodedSpan;
  errors: FieldError[];
}

/** An export's spans mapped and checked: the records to store, and the spans refused. */
interface CheckedExport {
  batch: CheckedBatch;
  refused: Refusal[];
}

/** How many refusals the error message spells out; the count covers them all. */
const MAX_REASONS = 5;

/**
 * Maps every span of an export to a call record and stores the lot through IngestService (validated,
 * priced, idempotent by the span's event_id, counted against limits). Spans that fail the mapping or the
 * record's validation are refused and reported; the rest are stored together, or not at all when the
 * store fails (IngestService throws its 503, which exporters retry). A span whose usage is counted on
 * another span, in this export or stored by an earlier one, is not priced (uncountedSpans); a span
 * refused is stored nowhere, so no usage is counted on it.
 */
export class OtlpIngest {
  readonly #turns = new TraceTurns();

  constructor(
    private readonly ingest: IngestService,
    private readonly store: SpanStore,
  ) {}

  async export(workspaceId: string, req: DecodedExport): Promise<ExportResult> {
    const traces = new Set<string>();
    for (const rs of req) for (const s of rs.spans) traces.add(`${workspaceId}\u0000${s.traceId}`);
    const endTurn = await this.#turns.take(traces);
    try {
      let checked = this.#check(workspaceId, req, await this.#uncounted(workspaceId, req));
      if (checked.refused.some((r) => reportsTokens(r.span.attributes))) {
        // A refused span reporting tokens may have made the spans above it wrappers, counting their usage
        // on it: counted again without the spans refused when priced (a wrapper whose calls all are is
        // priced itself, and may then be refused in turn: that is why all are mapped as priced here).
        const unpriceable = new Set(this.#check(workspaceId, req, new Map()).refused.map((r) => r.span));
        checked = this.#check(workspaceId, req, await this.#uncounted(workspaceId, req, unpriceable));
      }
      if (checked.batch.records.length) await this.ingest.store(checked.batch);
      return { rejectedSpans: checked.refused.length, errorMessage: describe(checked.refused) };
    } finally {
      endTurn();
    }
  }

  /**
   * The store is read for the model calls that report usage and have no descendant here that does
   * (`refused` aside: see uncountedSpans).
   */
  async #uncounted(
    workspaceId: string,
    req: DecodedExport,
    refused?: ReadonlySet<DecodedSpan>,
  ): Promise<Map<DecodedSpan, Uncounted>> {
    const inExport = uncountedSpans(req, [], refused);
    const calls = req.flatMap((rs) =>
      rs.spans.filter((s) => !inExport.has(s) && reportsTokens(s.attributes) && isModelCall(s, rs.resource)),
    );
    let stored: TraceSpan[];
    try {
      stored = await storedRelatives(this.store, workspaceId, req, calls);
    } catch (e) {
      // As a failed write: 503, which exporters retry (a 500 they drop, and the export's calls with it).
      throw new ApiError(
        503,
        "api_error",
        "store_unavailable",
        `nothing of this export was stored: the store could not be read (${(e as Error).message}); retry it`,
      );
    }
    return stored.length ? uncountedSpans(req, stored, refused) : inExport;
  }

  /** Maps every span (those `uncounted` unpriced) and validates and prices the records, storing nothing. */
  #check(workspaceId: string, req: DecodedExport, uncounted: Map<DecodedSpan, Uncounted>): CheckedExport {
    const items: Record<string, unknown>[] = [];
    const itemSpans: DecodedSpan[] = [];
    const refused: Refusal[] = [];
    for (const rs of req)
      for (const span of rs.spans) {
        const mapped = mapSpan(span, rs.resource, uncounted.get(span));
        if (mapped.ok) {
          items.push(mapped.input);
          itemSpans.push(span);
        } else refused.push({ span, errors: [{ field: mapped.field, reason: mapped.reason }] });
      }
    const batch = this.ingest.check(workspaceId, items);
    // Before it is stored, a batch's results are its refused items and duplicates; the rest are holes.
    for (const r of batch.results)
      if (r?.status === "rejected") refused.push({ span: itemSpans[r.index]!, errors: r.errors ?? [] });
    return { batch, refused };
  }
}

function describe(refused: readonly Refusal[]): string {
  if (!refused.length) return "";
  const reasons = refused.slice(0, MAX_REASONS).map((r) => {
    const fields = r.errors.map((e) => `${e.field}: ${e.reason}`).join("; ");
    return `span ${JSON.stringify(r.span.spanId.slice(0, 32))}: ${fields}`;
  });
  const more = refused.length > MAX_REASONS ? `; and ${refused.length - MAX_REASONS} more` : "";
  return `${refused.length} span(s) refused: ${reasons.join(" | ")}${more}`;
}
