import { defineConfig } from "vitest/config";

// The tests of pure logic (test/unit/): no database, so no global setup. npm run mutate runs them.
export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts"],
  },
});
