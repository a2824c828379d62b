/**
 * A grammY bot under Deno, as a Deno user writes one: grammY and the driver
 * from npm (import_map.json maps them to `npm:` specifiers, as `deno add
 * npm:grammy npm:pg npm:postgres` does in a deno.json), the storage from its
 * TypeScript source. Each update goes through `bot.handleUpdate`, with a fixed
 * `botInfo` and `client.apiRoot` at a local fake Bot API, so nothing leaves the machine.
 */
import { Bot, type Context, session, type SessionFlavor } from "grammy";
import pg from "pg";
import postgres from "postgres";
import { expect } from "vitest";
import { startFakeBotApi } from "../../../dev/fake-bot-api.ts";
import { botInfo, textMessage } from "../../../dev/telegram.ts";
import { PostgresStorage, type PostgresClient, sessionKey } from "../../../src/index.ts";
import { uniqueTable } from "../../support/clients.ts";

interface Counter {
  count: number;
}
type CounterContext = Context & SessionFlavor<Counter>;

const url = Deno.env.get("DATABASE_URL") ?? "";

const drivers: Record<string, () => { client: PostgresClient; end(): Promise<void> }> = {
  "pg Pool": () => {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    return { client: pool, end: () => pool.end() };
  },
  "postgres.js": () => {
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    return { client: sql, end: () => sql.end() };
  },
};

for (const [name, open] of Object.entries(drivers)) {
  Deno.test(`grammY Bot keeps a session counter through handleUpdate, on ${name}`, async () => {
    expect(url, "DATABASE_URL").not.toBe("");
    const api = await startFakeBotApi();
    const { client, end } = open();
    const tableName = uniqueTable("deno_bot");
    try {
      const storage = new PostgresStorage<Counter>({ client, tableName });
      const bot = new Bot<CounterContext>("123:offline", { botInfo, client: { apiRoot: api.apiRoot } });
      bot.use(session({ initial: () => ({ count: 0 }), storage, getSessionKey: sessionKey("user-in-chat") }));
      bot.command("count", (ctx) => ctx.reply(`count ${++ctx.session.count}`));

      const chat = -100123;
      for (const user of [1, 1, 2, 1]) await bot.handleUpdate(textMessage(chat, "/count", user));

      expect(api.textsTo(chat)).toStrictEqual(["count 1", "count 2", "count 1", "count 3"]);
      expect(await storage.read(`${chat}:1`)).toStrictEqual({ count: 3 });
      expect(await storage.read(`${chat}:2`)).toStrictEqual({ count: 1 });
    } finally {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query(`DROP TABLE IF EXISTS "${tableName}"`);
      await admin.end();
      await end();
      await api.stop();
    }
  });
}
