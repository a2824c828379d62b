import type pg from "pg";
import { textMessage } from "../dev/telegram.js";
import { bots, factories } from "./bots.js";
import { countingPool } from "./counting-pool.js";
import { rotate } from "./measure.js";

/** A cold start with the table missing, round by round. */
export interface ColdStart {
  readonly adapter: string;
  /** Milliseconds from a fresh pool and adapter to the first (modifying) update handled, per round. */
  readonly ms: number[];
  /** Connections the fresh pool opened, per round. */
  readonly connections: number[];
  /** Statements it sent, per round. */
  readonly statements: number[];
}

/**
 * A fresh process meeting an empty database: a new pg Pool of 10 and a new
 * adapter (storage-psql's `create()` runs its DDL here), then the first
 * update, which changes the session. Timed from before the pool exists to the
 * update handled, so connecting, creating the table and the update's
 * statements all count; connections are the pool's `connect` events. Each
 * round gives every adapter a table name never used before, in a rotating
 * order; a first round warms the code up and is not kept.
 */
export async function measureColdStarts(
  url: string,
  admin: pg.Pool,
  tables: (label: string) => string,
  rounds: number,
): Promise<ColdStart[]> {
  const results = new Map<string, { ms: number[]; connections: number[]; statements: number[] }>();
  for (let round = -1; round < rounds; round += 1) {
    for (const [name, create] of rotate(factories, Math.max(0, round))) {
      const table = tables(`cold_${name.replace(/\W+/g, "_")}_${round + 1}`);
      const started = performance.now();
      const { pool, statements } = countingPool(url, 10);
      let connections = 0;
      pool.on("connect", () => void (connections += 1));
      const { eager } = bots(await create(pool, table));
      await eager.handleUpdate(textMessage(1_000 + round, "/count"));
      const ms = performance.now() - started;
      await pool.end();
      await admin.query(`DROP TABLE IF EXISTS "${table}"`);
      if (round < 0) continue;
      const entry = results.get(name) ?? { ms: [], connections: [], statements: [] };
      entry.ms.push(ms);
      entry.connections.push(connections);
      entry.statements.push(statements.length);
      results.set(name, entry);
    }
  }
  return [...results].map(([adapter, entry]) => ({ adapter, ...entry }));
}
