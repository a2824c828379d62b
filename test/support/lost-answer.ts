import type pg from "pg";
import type { QueryParameter } from "../../src/index.ts";

/**
 * A `query(text, params)` client on `pool` whose first compare-and-set commits, after which `meanwhile` runs (another
 * writer, say) and the connection breaks: the set took effect, and its answer is lost.
 */
export function losingFirstSetAnswer(pool: pg.Pool, meanwhile: () => Promise<unknown>) {
  let loseNextSet = true;
  return {
    query: async (text: string, params: QueryParameter[]) => {
      const result = await pool.query(text, params);
      if (loseNextSet && text.includes("(UPDATE ")) {
        loseNextSet = false;
        await meanwhile();
        throw new Error("Connection terminated unexpectedly");
      }
      return result;
    },
  };
}
