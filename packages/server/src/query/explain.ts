import { formatUsd, ratio, splitVariance, sumVariance, type VarianceSplit } from "@tollgate/core";
import type { AnalyticsStore, EventFilter, SegmentDimension, SegmentRow } from "../store/types.js";
import { DAY_MS } from "../time.js";
import { keyLabel } from "./key-label.js";
import { change, FRACTION_DIGITS, money, perRequest, segmentsOf, tenantConcentration } from "./rollups.js";

export const DRIVER_DIMENSIONS = [
  "feature",
  "customer_id",
  "prompt_version",
  "model",
] as const satisfies readonly SegmentDimension[];

type Window = EventFilter & { from: number; to: number };

/** A prompt_version first seen inside the window that moved its feature's cost per request. */
export interface PromptDeploy {
  prompt_version: string;
  feature: string | null;
  first_seen: number;
  cost_per_request_before: bigint | null;
  cost_per_request_after: bigint | null;
  change: number | null;
}

/** Drivers listed per dimension, largest change first; the rest are summed into one row. */
const TOP_DRIVERS = 10;
/** How far around a deploy cost per request is compared (clamped to the window's end). */
const DEPLOY_SPAN_MS = 7 * DAY_MS;
/** A deploy is reported when it moved cost per request by at least this fraction either way. */
const DEPLOY_THRESHOLD = 0.1;

/**
 * Why spend changed between two windows: the exact volume / mix / rate split per driver dimension,
 * prompt-version deploys that moved cost per request, tenant concentration, and the share of spend on
 * retries and errors. Every amount is integer nano-USD; the parts of each split add up to its change.
 */
export async function explainChange(store: AnalyticsStore, current: Window, previous: Window) {
  // One scan per window for all four dimensions.
  const [before, after] = await Promise.all([
    store.segments(previous, DRIVER_DIMENSIONS, false),
    store.segments(current, DRIVER_DIMENSIONS, false),
  ]);
  const splits = DRIVER_DIMENSIONS.map((by) => ({
    by,
    before: before[by],
    after: after[by],
    split: splitVariance(cells(before[by]), cells(after[by])),
  }));
  const byFeature = splits[0]!;
  const byCustomer = splits[1]!;
  const total = byFeature.split;
  const deploys = await promptDeploys(store, current);
  const spend = (rows: SegmentRow[], f: (r: SegmentRow) => bigint) => rows.reduce((a, r) => a + f(r), 0n);
  const shares = (rows: SegmentRow[]) => {
    const cost = spend(rows, (r) => r.cost_nanousd);
    const part = (x: bigint) => ratio(x, cost, FRACTION_DIGITS);
    return {
      retry_share: part(spend(rows, (r) => r.retry_cost_nanousd)),
      error_share: part(spend(rows, (r) => r.error_cost_nanousd)),
    };
  };
  const result = {
    current: { from: current.from, to: current.to },
    previous: { from: previous.from, to: previous.to },
    total: partsJson(total),
    change: change(total.after.cost_nanousd, total.before.cost_nanousd),
    drivers: Object.fromEntries(
      splits.map(({ by, split }) => [
        by,
        split.segments.slice(0, TOP_DRIVERS).map((s) => ({ key: s.key, ...partsJson(s) })),
      ]),
    ),
    // The drivers past the listed ones, summed (zero when none are left out): with it, a dimension's rows
    // add up to its split exactly, and the reader sees how much the list does not show.
    drivers_other: Object.fromEntries(
      splits.map(({ by, split }) => {
        const rest = split.segments.slice(TOP_DRIVERS);
        return [by, { segments: rest.length, ...partsJson(sumVariance(rest)) }];
      }),
    ),
    prompt_deploys: deploys.map((d) => ({
      ...d,
      first_seen: new Date(d.first_seen).toISOString(),
      cost_per_request_before: d.cost_per_request_before === null ? null : money(d.cost_per_request_before),
      cost_per_request_after: d.cost_per_request_after === null ? null : money(d.cost_per_request_after),
    })),
    concentration: {
      current: tenantConcentration(byCustomer.after),
      previous: tenantConcentration(byCustomer.before),
    },
    waste: { current: shares(byFeature.after), previous: shares(byFeature.before) },
  };
  return {
    ...result,
    narrative: narrate(total, splits, deploys, result.concentration, result.waste.current),
  };
}

function cells(rows: readonly SegmentRow[]) {
  return rows.map((r) => ({ key: r.key, requests: r.requests, cost_nanousd: r.cost_nanousd }));
}

/** The parts of a change, as JSON money (a whole split, or one segment of it). */
function partsJson(v: Omit<VarianceSplit["segments"][number], "key">) {
  return {
    before: { requests: v.before.requests, cost: money(v.before.cost_nanousd) },
    after: { requests: v.after.requests, cost: money(v.after.cost_nanousd) },
    change: money(v.change_nanousd),
    volume: money(v.volume_nanousd),
    mix: money(v.mix_nanousd),
    rate: money(v.rate_nanousd),
  };
}

/**
 * Versions first seen (over all history up to the window's end) inside the window: their feature's cost
 * per request in the DEPLOY_SPAN before the first sighting vs after it.
 */
async function promptDeploys(store: AnalyticsStore, w: Window): Promise<PromptDeploy[]> {
  const fresh = await store.firstSeen({ ...w, from: undefined }, "prompt_version", w.from);
  const out = await Promise.all(
    fresh.map(async (v): Promise<PromptDeploy> => {
      // The version is new in the window, so all its calls are in it: its main feature is found there.
      const [feature] = await segmentsOf(
        store,
        { ...w, from: v.first_seen, where: { ...w.where, prompt_version: v.key } },
        "feature",
      );
      const f = feature?.key ?? null;
      const scope = { ...w, where: { ...w.where, ...(f === null ? {} : { feature: f }) } };
      const [before, after] = await Promise.all([
        segmentsOf(store, { ...scope, from: v.first_seen - DEPLOY_SPAN_MS, to: v.first_seen }, "feature"),
        segmentsOf(
          store,
          { ...scope, from: v.first_seen, to: Math.min(w.to, v.first_seen + DEPLOY_SPAN_MS) },
          "feature",
        ),
      ]);
      const cpr = (rows: SegmentRow[]) => {
        const r = rows.find((x) => x.key === f);
        return r ? perRequest(r.cost_nanousd, r.requests) : null;
      };
      const b = cpr(before);
      const a = cpr(after);
      return {
        prompt_version: v.key,
        feature: f,
        first_seen: v.first_seen,
        cost_per_request_before: b,
        cost_per_request_after: a,
        change: a !== null && b !== null ? change(a, b) : null,
      };
    }),
  );
  return out
    .filter((d) => d.change !== null && Math.abs(d.change) >= DEPLOY_THRESHOLD)
    .sort((x, y) => Math.abs(y.change!) - Math.abs(x.change!));
}

const CENT = 10_000_000n;
/** Cents, or the digits it takes to show a change under a cent (+$0.00 would read as none). */
const usd = (n: bigint) => {
  const abs = n < 0n ? -n : n;
  return `${n < 0n ? "-" : "+"}$${formatUsd(abs, abs > 0n && abs < CENT ? 6 : 2)}`;
};
const pct = (x: number | null) => (x === null ? "n/a" : `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`);

/** The change in words and numbers, biggest drivers first. */
function narrate(
  total: VarianceSplit,
  splits: { by: SegmentDimension; split: VarianceSplit }[],
  deploys: PromptDeploy[],
  conc: { current: ReturnType<typeof tenantConcentration>; previous: ReturnType<typeof tenantConcentration> },
  waste: { retry_share: number; error_share: number },
): string[] {
  const lines: string[] = [];
  const { before, after } = total;
  if (before.cost_nanousd === 0n && after.cost_nanousd === 0n) lines.push("No spend in either window.");
  else if (total.change_nanousd === 0n)
    lines.push(`Spend was unchanged at $${formatUsd(after.cost_nanousd, 2)}.`);
  else
    lines.push(
      `Spend ${total.change_nanousd > 0n ? "rose" : "fell"} ${usd(total.change_nanousd)} (${pct(change(after.cost_nanousd, before.cost_nanousd))}), ` +
        `from $${formatUsd(before.cost_nanousd, 2)} to $${formatUsd(after.cost_nanousd, 2)}: ` +
        `volume ${usd(total.volume_nanousd)}, mix ${usd(total.mix_nanousd)}, cost per request ${usd(total.rate_nanousd)}.`,
    );
  for (const { by, split } of splits) {
    const top = split.segments.filter((s) => s.change_nanousd !== 0n).slice(0, 3);
    if (!top.length) continue;
    lines.push(
      `By ${by}: ` +
        top
          .map(
            (s) =>
              `${keyLabel(s.key)} ${usd(s.change_nanousd)} (volume ${usd(s.volume_nanousd)}, mix ${usd(s.mix_nanousd)}, cost/request ${usd(s.rate_nanousd)})`,
          )
          .join("; ") +
        ".",
    );
  }
  for (const d of deploys.slice(0, 3))
    lines.push(
      `prompt_version ${d.prompt_version} (feature ${keyLabel(d.feature)}) first seen ${new Date(d.first_seen).toISOString().slice(0, 10)}: ` +
        `cost per request ${pct(d.change)} ($${formatUsd(d.cost_per_request_before ?? 0n, 6)} → $${formatUsd(d.cost_per_request_after ?? 0n, 6)}).`,
    );
  lines.push(
    `Top ${conc.current.top_n} customers: ${(conc.current.top_share * 100).toFixed(1)}% of spend ` +
      `(was ${(conc.previous.top_share * 100).toFixed(1)}%), HHI ${conc.current.hhi.toFixed(3)} (was ${conc.previous.hhi.toFixed(3)}).`,
  );
  lines.push(
    `Retries ${(waste.retry_share * 100).toFixed(1)}% of spend, failed attempts ${(waste.error_share * 100).toFixed(1)}%.`,
  );
  return lines;
}
