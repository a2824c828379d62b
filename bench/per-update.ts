import pg from "pg";
import { UPDATE_KINDS, bots, factories, type Bots, type UpdateKind } from "./bots.js";
import { rotate } from "./measure.js";

/** Updates per second of one adapter, for one kind of update at one concurrency, round by round. */
export interface PerUpdate {
  readonly adapter: string;
  readonly kind: UpdateKind;
  readonly concurrency: number;
  /** Updates per second in each round, in round order (every adapter ran once per round, next to the others). */
  readonly rates: number[];
  /** Statements the adapter sent per update, over every round. */
  readonly statementsPerUpdate: number;
  /** Microseconds of this process's CPU (grammY, the adapter, pg) per update, in each round. */
  readonly cpuMicros: number[];
}

export interface PerUpdateSettings {
  readonly rounds: number;
  /** How long each adapter runs per round, kind and concurrency. */
  readonly milliseconds: number;
  readonly concurrencies: readonly number[];
}

/** The pool every adapter shares here: ten connections, as a bot's process would hold. */
export const PER_UPDATE_POOL_SIZE = 10;

/**
 * Updates per second through a real grammY `Bot` (`bot.handleUpdate`), with
 * `session()` and `lazySession()`, on each adapter, all on one pg Pool of 10
 * whose clients count the statements they run. At concurrency c, c chats send
 * updates at once, each chat one update after the other (as grammY runner's
 * `sequentialize` would order them). Each round runs every adapter once per
 * (concurrency, kind), in an order that rotates, so that the ratio of two
 * adapters in one round compares neighbours in time.
 */
export async function measurePerUpdate(
  url: string,
  tables: (label: string) => string,
  settings: PerUpdateSettings,
): Promise<PerUpdate[]> {
  let statements = 0;
  class CountingClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      const query = this.query.bind(this) as (...args: unknown[]) => unknown;
      this.query = ((...args: unknown[]) => {
        statements += 1;
        return query(...args);
      }) as pg.Client["query"];
    }
  }
  const pool = new pg.Pool({ connectionString: url, max: PER_UPDATE_POOL_SIZE, Client: CountingClient });
  try {
    const adapters: { name: string; bots: Bots }[] = [];
    for (const [name, create] of factories)
      adapters.push({ name, bots: bots(await create(pool, tables(`upd_${name.replace(/\W+/g, "_")}`))) });
    const chats = Math.max(...settings.concurrencies);
    // Every chat has a session before anything is timed, and every code path has run.
    for (const { bots } of adapters) {
      for (let chat = 1; chat <= chats; chat += 1) await bots.handle("modifying", chat);
      for (const kind of UPDATE_KINDS) await run(bots, kind, chats, 50);
    }

    const results = new Map<string, { rates: number[]; updates: number; statements: number; cpuMicros: number[] }>();
    for (let round = 0; round < settings.rounds; round += 1) {
      for (const concurrency of settings.concurrencies) {
        for (const [k, kind] of UPDATE_KINDS.entries()) {
          for (const { name, bots } of rotate(adapters, round + k)) {
            const before = statements;
            const cpu = process.cpuUsage();
            const { updates, seconds } = await run(bots, kind, concurrency, settings.milliseconds);
            const { user, system } = process.cpuUsage(cpu);
            const id = `${name}|${kind}|${concurrency}`;
            const entry = results.get(id) ?? { rates: [], updates: 0, statements: 0, cpuMicros: [] };
            entry.rates.push(updates / seconds);
            entry.cpuMicros.push((user + system) / updates);
            entry.updates += updates;
            entry.statements += statements - before;
            results.set(id, entry);
          }
        }
      }
    }
    return [...results].map(([id, { rates, updates, statements: sent, cpuMicros }]) => {
      const [adapter = "", kind = "", concurrency = "0"] = id.split("|");
      return {
        adapter,
        kind: kind as UpdateKind,
        concurrency: Number(concurrency),
        rates,
        statementsPerUpdate: sent / updates,
        cpuMicros,
      };
    });
  } finally {
    await pool.end();
  }
}

/** `concurrency` chats (1, 2, …) each send updates of one kind, one after the other, for `milliseconds`. */
async function run(
  bots: Bots,
  kind: UpdateKind,
  concurrency: number,
  milliseconds: number,
): Promise<{ updates: number; seconds: number }> {
  let updates = 0;
  const start = performance.now();
  const deadline = start + milliseconds;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < deadline) {
        await bots.handle(kind, worker + 1);
        updates += 1;
      }
    }),
  );
  return { updates, seconds: (performance.now() - start) / 1000 };
}
