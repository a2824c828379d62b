import { defineConfig } from "vitest/config";
import base from "./vitest.config.js";

// The tests npm run mutate:database runs against each mutant of the database-facing modules: those that
// exercise the statements, the driver and the storage's operations on a real database, quickly.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: [
      "test/conformance.test.ts",
      "test/update.test.ts",
      "test/write-backs.test.ts",
      "test/conflicts.test.ts",
      "test/ttl.test.ts",
      "test/migrate.test.ts",
      "test/create-table-sql.test.ts",
      "test/table-names.test.ts",
      "test/concurrency.test.ts",
      "test/connections.test.ts",
      "test/error-fields.test.ts",
      "test/observe.test.ts",
      "test/mutation-probe.test.ts",
      "test/timeouts.test.ts",
      "test/operation-edges.test.ts",
      "test/driver-edges.test.ts",
      "test/write-back-edges.test.ts",
      "test/migrate-edges.test.ts",
      "test/client-shapes.test.ts",
      "test/unconnected-client.test.ts",
      "test/unit/**/*.test.ts",
    ],
  },
});
