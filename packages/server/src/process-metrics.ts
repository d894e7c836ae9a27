import { collectDefaultMetrics, Registry } from "prom-client";

let registry: Registry | null = null;

/**
 * The process's own Prometheus metrics: resident memory, CPU, open fds, JS heap, event-loop delay, GC
 * pauses. Collected once per process, however many runtimes it hosts (its GC observer and event-loop
 * monitor are never stopped, so one of each).
 */
export function processMetrics(): Registry {
  if (!registry) {
    registry = new Registry();
    collectDefaultMetrics({ register: registry });
  }
  return registry;
}
