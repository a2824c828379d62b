import { PsqlAdapter } from "@grammyjs/storage-psql";
import { Postgres as TelegrafPostgres } from "@telegraf/session/pg";
import { Bot, lazySession, session, type Context, type LazySessionFlavor, type SessionFlavor, type StorageAdapter } from "grammy";
import pg from "pg";
import { PostgresStorage } from "../src/index.js";
import { statementsPerUpdate } from "../test/support/counting.js";
import { botInfo, textMessage } from "../test/support/telegram.js";
import { countingPool } from "./counting-pool.js";

interface Counter {
  count: number;
}

/** Statements per grammY update, for each kind of update. */
export interface RoundTrips {
  readonly adapter: string;
  readonly readOnly: number;
  readonly modifying: number;
  readonly lazyUntouched: number;
  readonly coldStartTableExists: number;
  readonly coldStartTableMissing: number;
}

type Factory = (pool: pg.Pool, table: string) => Promise<StorageAdapter<Counter>>;

const factories: [string, Factory][] = [
  ["grammy-postgres-storage", async (pool, table) => new PostgresStorage<Counter>({ client: pool, tableName: table })],
  ["@grammyjs/storage-psql", async (pool, table) => (await PsqlAdapter.create({ client: pool as unknown as pg.Client, tableName: table })) as StorageAdapter<Counter>],
  [
    "@telegraf/session/pg",
    async (pool, table) => {
      const store = TelegrafPostgres<Counter>({ pool, table });
      return { read: (key) => store.get(key), write: async (key, value) => void (await store.set(key, value)), delete: async (key) => void (await store.delete(key)) };
    },
  ],
];

// No handler replies, so no Bot API is needed: only the storage is measured.
function bots(storage: StorageAdapter<Counter>) {
  const eager = new Bot<Context & SessionFlavor<Counter>>("1:bench", { botInfo });
  eager.use(session({ initial: () => ({ count: 0 }), storage }));
  eager.command("count", (ctx) => void (ctx.session.count += 1));
  eager.command("peek", (ctx) => void ctx.session.count);
  const lazy = new Bot<Context & LazySessionFlavor<Counter>>("1:bench", { botInfo });
  lazy.use(lazySession({ initial: () => ({ count: 0 }), storage }));
  lazy.command("ping", () => {});
  return { eager, lazy };
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
