import { Bot, session, type Context, type SessionFlavor, type StorageAdapter } from "grammy";
import { botInfo, textMessage } from "../dev/telegram.js";
import { factories, type Counter } from "./bots.js";
import { countingPool } from "./counting-pool.js";
import { rotate } from "./measure.js";

/** Two isolates sharing sessions: what one adapter achieved in each round. */
export interface SharedSession {
  readonly adapter: string;
  /** Updates per second of both isolates together, in each round. */
  readonly rates: number[];
  /** Statements per update, over every round. */
  readonly statementsPerUpdate: number;
  /** Changes (increments) both isolates made, and how many of them the rows hold at the end, over every round. */
  readonly changes: number;
  readonly kept: number;
}

type Shared = Record<string, number>;

/**
 * Two isolates, each with a pool and a storage of its own, handle updates of
 * the same `chats` chats at once, each update incrementing its isolate's own
 * field (`n0`, `n1`) through a real grammY `Bot`; each isolate handles each
 * chat's updates one after the other. A write-back that undoes the other
 * isolate's change loses it: `kept` counts what the rows hold at the end.
 */
export async function measureSharedSession(
  url: string,
  tables: (label: string) => string,
  settings: { rounds: number; milliseconds: number; chats: number },
): Promise<SharedSession[]> {
  const counting = [0, 1].map(() => countingPool(url, 5));
  const pools = counting.map(({ pool }) => pool);
  const sentSoFar = () => counting.reduce((sum, { statements }) => sum + statements.length, 0);
  try {
    const adapters: { name: string; storages: StorageAdapter<Counter>[]; table: string }[] = [];
    for (const [name, create] of factories) {
      const table = tables(`shared_${name.replace(/\W+/g, "_")}`);
      const storages: StorageAdapter<Counter>[] = [];
      for (const pool of pools) {
        const storage = await create(pool, table);
        // One isolate after the other, as a deployed bot's table exists by its second: telegraf runs its
        // CREATE TABLE when made, and two at once can both try to create it (23505 on pg_type).
        await storage.read("0");
        storages.push(storage);
      }
      adapters.push({ name, storages, table });
    }
    const results = new Map<
      string,
      { rates: number[]; updates: number; statements: number; changes: number; kept: number }
    >();
    for (let round = 0; round < settings.rounds; round += 1) {
      for (const { name, storages } of rotate(adapters, round)) {
        // Chats of this round's own, so that every round starts from no session.
        const firstChat = 1_000_000 + round * settings.chats;
        const bots = storages.map((storage, isolate) => {
          const bot = new Bot<Context & SessionFlavor<Shared>>("1:bench", { botInfo });
          bot.use(session({ initial: () => ({}), storage: storage as unknown as StorageAdapter<Shared> }));
          bot.on("message", (ctx) => {
            ctx.session[`n${isolate}`] = (ctx.session[`n${isolate}`] ?? 0) + 1;
          });
          return bot;
        });
        const before = sentSoFar();
        let updates = 0;
        const start = performance.now();
        const deadline = start + settings.milliseconds;
        await Promise.all(
          bots.flatMap((bot) =>
            Array.from({ length: settings.chats }, async (_, c) => {
              while (performance.now() < deadline) {
                await bot.handleUpdate(textMessage(firstChat + c, "+"));
                updates += 1;
              }
            }),
          ),
        );
        const seconds = (performance.now() - start) / 1000;
        const sent = sentSoFar() - before;
        let kept = 0;
        for (let c = 0; c < settings.chats; c += 1) {
          const stored = (await storages[0]?.read(String(firstChat + c))) as Shared | undefined;
          kept += (stored?.n0 ?? 0) + (stored?.n1 ?? 0);
        }
        const entry = results.get(name) ?? { rates: [], updates: 0, statements: 0, changes: 0, kept: 0 };
        entry.rates.push(updates / seconds);
        entry.updates += updates;
        entry.statements += sent;
        entry.changes += updates;
        entry.kept += kept;
        results.set(name, entry);
      }
    }
    return [...results].map(([adapter, { rates, updates, statements: sent, changes, kept }]) => ({
      adapter,
      rates,
      statementsPerUpdate: sent / updates,
      changes,
      kept,
    }));
  } finally {
    await Promise.all(pools.map((pool) => pool.end()));
  }
}
