import { statementsPerUpdate } from "../dev/counting.js";
import { textMessage } from "../dev/telegram.js";
import { bots, factories } from "./bots.js";
import { countingPool } from "./counting-pool.js";

/** Statements per grammY update, for each kind of update. */
export interface RoundTrips {
  readonly adapter: string;
  readonly readOnly: number;
  readonly modifying: number;
  readonly lazyUntouched: number;
  readonly coldStartTableExists: number;
  readonly coldStartTableMissing: number;
}

/**
 * Counts the statements each adapter spends per update, with the same bot on
 * each. A cold start is a new pool and a new adapter, as in a fresh process;
 * what creating the adapter costs is counted with its first update.
 */
export async function measureRoundTrips(url: string, table: (label: string) => string): Promise<RoundTrips[]> {
  const results: RoundTrips[] = [];
  for (const [name, create] of factories) {
    const label = name.replace(/\W+/g, "_");
    const existing = table(`rt_${label}`);
    const warm = countingPool(url, 2);
    const { eager, lazy } = bots(await create(warm.pool, existing));
    await eager.handleUpdate(textMessage(1, "/count"));
    const readOnly = await statementsPerUpdate(warm, eager, textMessage(1, "/peek"));
    const modifying = await statementsPerUpdate(warm, eager, textMessage(1, "/count"));
    const lazyUntouched = await statementsPerUpdate(warm, lazy, textMessage(1, "/ping"));
    await warm.pool.end();

    const cold = async (tableName: string) => {
      const fresh = countingPool(url, 2);
      const storage = await create(fresh.pool, tableName);
      const { eager: bot } = bots(storage);
      await bot.handleUpdate(textMessage(2, "/count"));
      await fresh.pool.end();
      return fresh.statements.length;
    };
    results.push({
      adapter: name,
      readOnly,
      modifying,
      lazyUntouched,
      coldStartTableExists: await cold(existing),
      coldStartTableMissing: await cold(table(`rt_missing_${label}`)),
    });
  }
  return results;
}
