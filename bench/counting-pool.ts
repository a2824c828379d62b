import pg from "pg";

/**
 * A pg Pool whose every client records the statements it runs, whichever way
 * an adapter reaches it (`pool.query`, or `pool.connect()` as kysely does).
 */
export function countingPool(connectionString: string, max: number): { pool: pg.Pool; statements: string[] } {
  const statements: string[] = [];
  class CountingClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      const query = this.query.bind(this) as (...args: unknown[]) => unknown;
      this.query = ((...args: unknown[]) => {
        const first = args[0];
        statements.push(typeof first === "string" ? first : String((first as { text?: unknown })?.text));
        return query(...args);
      }) as pg.Client["query"];
    }
  }
  return { pool: new pg.Pool({ connectionString, max, Client: CountingClient }), statements };
}
