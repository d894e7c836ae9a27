import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const ALL = ["packages/*/test/**/*.test.ts"];
const ALONE = [
  "packages/server/test/scale-out.test.ts",
  "packages/server/test/store.conformance.test.ts",
  "packages/server/test/budget-seed-redis-edges.test.ts",
  "packages/server/test/clickhouse-on-cluster.test.ts",
  "packages/server/test/retention-edges.test.ts",
];

export default defineConfig({
  resolve: {
    // Tests run against sources; the built dist is only for the CLI and spawned servers.
    alias: [
      {
        find: /^@tollgate\/core$/,
        replacement: fileURLToPath(new URL("./packages/core/src/index.ts", import.meta.url)),
      },
      {
        find: /^@tollgate\/core\/fields$/,
        replacement: fileURLToPath(new URL("./packages/core/src/fields.ts", import.meta.url)),
      },
    ],
  },
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Most files wait on child servers, sockets and timers more than on the CPU: two at once on two cores
    // (vitest runs one there) halve the suite's wall time.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    projects: [
      { extends: true, test: { name: "parallel", include: ALL, exclude: ALONE } },
      // Files that keep both cores busy (ClickHouse, several gateways, tens of thousands of calls): beside
      // another file they starved its timers. `npm test` runs them after the rest, one at a time.
      { extends: true, test: { name: "alone", include: ALONE } },
    ],
  },
});
