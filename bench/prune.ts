import type pg from "pg";
import { PostgresStorage, createTableSql } from "../src/index.js";

/** prune() beside one bare DELETE, on identical tables of expired rows, round by round. */
export interface PruneTiming {
  readonly rows: number;
  /** Milliseconds `storage.prune()` took, per round. */
  readonly pruneMs: number[];
  /** Milliseconds one `DELETE FROM t WHERE expires_at <= now()` took, per round. */
  readonly deleteMs: number[];
  /** Rows each removed, over all rounds (both should be rows × rounds). */
  readonly pruned: number;
  readonly deleted: number;
}

/**
 * Fills two tables made by `createTableSql` with the same `rows` expired
 * sessions, vacuums and analyzes both (so neither pays for hint bits or
 * statistics the other gets for free) and checkpoints, then empties one with
 * `prune()` (256 blocks per statement) and the other with one
 * bare `DELETE … WHERE expires_at <= now()`, each round in the other order.
 */
export async function measurePrune(
  pool: pg.Pool,
  tables: (label: string) => string,
  rows: number,
  rounds: number,
): Promise<PruneTiming> {
  const timing = { rows, pruneMs: [] as number[], deleteMs: [] as number[], pruned: 0, deleted: 0 };
  const ours = tables(`prune_ours_${rows}`);
  const bare = tables(`prune_bare_${rows}`);
  const storage = new PostgresStorage({ client: pool, tableName: ours });
  for (let round = 0; round < rounds; round += 1) {
    for (const name of [ours, bare]) {
      await pool.query(`DROP TABLE IF EXISTS "${name}"`);
      await pool.query(createTableSql(name));
      await pool.query(
        `INSERT INTO "${name}" (key, value, updated_at, expires_at) ` +
          `SELECT 'chat:' || i, '{"count":1}', now() - interval '2 hours', now() - interval '1 hour' FROM generate_series(1, $1::int) AS i`,
        [rows],
      );
    }
    for (const name of [ours, bare]) await pool.query(`VACUUM ANALYZE "${name}"`);
    const runs = [
      async () => {
        const started = performance.now();
        timing.pruned += await storage.prune();
        timing.pruneMs.push(performance.now() - started);
      },
      async () => {
        const started = performance.now();
        timing.deleted += (await pool.query(`DELETE FROM "${bare}" WHERE expires_at <= now()`)).rowCount ?? 0;
        timing.deleteMs.push(performance.now() - started);
      },
    ];
    for (const run of round % 2 === 0 ? runs : runs.reverse()) {
      // Neither pays for writing out the other's dirty pages.
      await pool.query("CHECKPOINT").catch(() => {});
      await run();
    }
  }
  for (const name of [ours, bare]) await pool.query(`DROP TABLE IF EXISTS "${name}"`);
  return timing;
}
