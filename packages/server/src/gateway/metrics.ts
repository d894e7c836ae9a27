import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The gateway's own Prometheus metrics, served at /metrics. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: "tollgate_gateway_requests_total",
    help: "Calls proxied, by provider family, API and HTTP status",
    labelNames: ["family", "api", "status"] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "tollgate_gateway_request_duration_seconds",
    help: "Time from request to the last byte sent to the client",
    labelNames: ["family", "stream"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: "tollgate_gateway_upstream_errors_total",
    help: "Upstream failures: HTTP 429/5xx, timeouts, connection errors",
    labelNames: ["family", "kind"] as const,
    registers: [this.registry],
  });
  readonly backgroundPolls = new Counter({
    name: "tollgate_gateway_background_polls_total",
    help: "The gateway's own polls of background responses no client polled, by upstream HTTP status",
    labelNames: ["status"] as const,
    registers: [this.registry],
  });
  readonly sockets = new Gauge({
    name: "tollgate_gateway_websocket_sessions",
    help: "WebSocket sessions open through the gateway (OpenAI Realtime and other /v1 paths)",
    registers: [this.registry],
  });
  readonly recordedCost = new Counter({
    name: "tollgate_recorded_cost_nanousd_total",
    help: "Cost of the calls recorded by this gateway, in nano-USD",
    registers: [this.registry],
  });

  constructor(state: {
    spoolDepth: () => number;
    spoolFailing: () => boolean;
    pending: () => number;
    batchResultsWaiting: () => number;
  }) {
    this.#gauge("tollgate_spool_depth", "Records waiting on disk for the store", state.spoolDepth);
    this.#gauge(
      "tollgate_spool_failing",
      "1 while the disk refuses the spool (full, read-only): records the store cannot take wait in memory",
      () => (state.spoolFailing() ? 1 : 0),
    );
    this.#gauge("tollgate_recorder_pending", "Records queued in memory for the store", state.pending);
    this.#gauge(
      "tollgate_batch_results_waiting",
      "Calls of downloaded batch results waiting for the store (past 5,000, downloads wait for it)",
      state.batchResultsWaiting,
    );
  }

  /** A gauge read when /metrics is scraped. */
  #gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }
}
