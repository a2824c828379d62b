import { defineConfig } from "vitest/config";
import base from "./vitest.config.js";

// The fault and load tests, run by `npm run test:faults` on their own, so that
// their many connections and injected failures never meet the main suite's.
export default defineConfig({
  ...base,
  test: { ...base.test, include: ["test/faults/**/*.test.ts"], exclude: ["node_modules/**"], fileParallelism: false },
});
