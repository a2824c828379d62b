import type pg from "pg";

/** A pooled connection's `query()`, as pg takes it: `(text | config, values?, callback?)`. */
export type PooledQuery = (...args: unknown[]) => unknown;

/**
 * A pg-style Pool over `pool` whose checked-out connections run `query()`
 * through `wrap` (given the connection's own `query`), as a pooler or an
 * instrumentation wrapper would; everything else passes through.
 */
export function wrappedPool(pool: pg.Pool, wrap: (query: PooledQuery) => PooledQuery) {
  return {
    idleCount: 0,
    totalCount: 0,
    query: (text: string, params: unknown[]) => pool.query(text, params),
    async connect() {
      const connection = await pool.connect();
      return {
        query: wrap(connection.query.bind(connection) as PooledQuery),
        release: (error?: Error | boolean) => connection.release(error),
        on: (event: "error", listener: (error: Error) => void) => connection.on(event, listener),
        removeListener: (event: "error", listener: (error: Error) => void) =>
          connection.removeListener(event, listener),
      };
    },
  };
}
