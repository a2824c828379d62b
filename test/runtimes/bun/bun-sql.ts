import type { UnsafeQueryClient } from "../../../src/index.ts";

/** The slice of Bun's `SQL` class the Bun tests use (bun-types is not a dependency; test/runtimes/bun/types-check.ts checks the real one). */
export interface BunSql extends UnsafeQueryClient {
  unsafe(text: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  close(options?: { timeout?: number }): Promise<void>;
}

/** Bun's built-in `SQL` class, as `import { SQL } from "bun"` gives it, reached through the global so that Node's type check passes. */
export const SQL = (
  globalThis as unknown as {
    Bun: {
      SQL: new (
        options: string | { url: string; max?: number; prepare?: boolean; connectionTimeout?: number },
      ) => BunSql;
    };
  }
).Bun.SQL;
