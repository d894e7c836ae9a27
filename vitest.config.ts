import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

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
    include: ["packages/*/test/**/*.test.ts"],
    // Most files wait on child servers, sockets and timers more than on the CPU: two at once on two cores
    // (vitest runs one there) halve the suite's wall time.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
