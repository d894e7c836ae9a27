import { readdirSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Counter, Gauge, Registry } from "prom-client";

let registry: Registry | null = null;

/**
 * The process's own Prometheus metrics, under their usual names: resident memory, CPU, open fds, JS heap,
 * and how busy the event loop was since the last scrape. All read when /metrics is scraped, so they cost
 * the proxy nothing between scrapes (prom-client's default set watches every GC and samples the event loop
 * every 10 ms, always). One set per process, however many runtimes it hosts.
 */
export function processMetrics(): Registry {
  if (registry) return registry;
  const r = new Registry();
  registry = r;
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [r],
      collect() {
        this.set(read());
      },
    });
  gauge("process_resident_memory_bytes", "Resident memory size in bytes", () => process.memoryUsage.rss());
  gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds", () =>
    Math.round(performance.timeOrigin / 1000),
  );
  gauge("process_open_fds", "Number of open file descriptors", openFds);
  gauge(
    "nodejs_heap_size_total_bytes",
    "Process heap size from Node.js in bytes",
    () => process.memoryUsage().heapTotal,
  );
  gauge(
    "nodejs_heap_size_used_bytes",
    "Process heap size used from Node.js in bytes",
    () => process.memoryUsage().heapUsed,
  );
  gauge(
    "nodejs_external_memory_bytes",
    "Node.js external memory size in bytes",
    () => process.memoryUsage().external,
  );
  let elu = performance.eventLoopUtilization();
  gauge(
    "tollgate_event_loop_utilization",
    "Share of the time since the last scrape the event loop was busy (0-1)",
    () => {
      const now = performance.eventLoopUtilization();
      const since = performance.eventLoopUtilization(now, elu);
      elu = now;
      return since.utilization;
    },
  );
  cpuCounters(r);
  return r;
}

/** CPU time as counters, each advanced by what was used since it was last read. */
function cpuCounters(r: Registry): void {
  const counter = (name: string, help: string, of: (u: NodeJS.CpuUsage) => number) => {
    let seen = 0;
    return new Counter({
      name,
      help,
      registers: [r],
      collect() {
        const micros = of(process.cpuUsage());
        this.inc(Math.max(0, micros - seen) / 1e6);
        seen = micros;
      },
    });
  };
  counter("process_cpu_user_seconds_total", "Total user CPU time spent in seconds", (u) => u.user);
  counter("process_cpu_system_seconds_total", "Total system CPU time spent in seconds", (u) => u.system);
  counter(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds",
    (u) => u.user + u.system,
  );
}

/** Open file descriptors (Linux; 0 where /proc is not there), less the one reading the list took. */
function openFds(): number {
  try {
    return readdirSync("/proc/self/fd").length - 1;
  } catch {
    return 0;
  }
}
