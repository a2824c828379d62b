/**
 * A grammY bot under Bun with Bun's own SQL: a session counter through
 * `bot.handleUpdate`, replies going to the local fake Bot API, the table
 * created by the first write. The same statements per update as on Node.
 */
import { Bot, session, type Context, type SessionFlavor } from "grammy";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countStatements, statementsPerUpdate } from "../../../dev/counting.ts";
import { startFakeBotApi, type FakeBotApi } from "../../../dev/fake-bot-api.ts";
import { botInfo, textMessage } from "../../../dev/telegram.ts";
import { PostgresStorage } from "../../../src/index.ts";
import { databaseUrl, tableExists, uniqueTable } from "../../support/clients.ts";
import { SQL, type BunSql } from "./bun-sql.ts";

interface Counter {
  count: number;
}

describe("grammY on Bun with Bun's SQL", () => {
  let api: FakeBotApi;
  let sql: BunSql;
  const table = uniqueTable("bun_grammy");
  beforeAll(async () => {
    api = await startFakeBotApi();
    sql = new SQL({ url: databaseUrl(), max: 2 });
  });
  afterAll(async () => {
    await sql.unsafe(`DROP TABLE IF EXISTS "${table}"`, []);
    await sql.close();
    await api.stop();
  });

  it("counts through a session, creating the table on the first write", async () => {
    const counted = countStatements(sql);
    const bot = new Bot<Context & SessionFlavor<Counter>>("123:offline", { botInfo, client: { apiRoot: api.apiRoot } });
    bot.use(
      session({
        initial: () => ({ count: 0 }),
        storage: new PostgresStorage<Counter>({ client: counted.client, tableName: table }),
      }),
    );
    bot.command("count", (ctx) => ctx.reply(`count ${++ctx.session.count}`));
    bot.command("peek", (ctx) => ctx.reply(`count is ${ctx.session.count}`));

    // read (missing table: no value), write (42P01), CREATE TABLE, write again
    expect(await statementsPerUpdate(counted, bot, textMessage(201, "/count"))).toBe(4);
    expect(await statementsPerUpdate(counted, bot, textMessage(201, "/count"))).toBe(2);
    expect(await statementsPerUpdate(counted, bot, textMessage(201, "/peek"))).toBe(1);
    await bot.handleUpdate(textMessage(202, "/count"));
    expect(api.textsTo(201)).toStrictEqual(["count 1", "count 2", "count is 2"]);
    expect(api.textsTo(202)).toStrictEqual(["count 1"]);
    expect(await tableExists((text, params = []) => sql.unsafe(text, params), table)).toBe(true);
    expect(await sql.unsafe(`SELECT key, value::text AS value FROM "${table}" ORDER BY key`, [])).toStrictEqual([
      { key: "201", value: '{"count":2}' },
      { key: "202", value: '{"count":1}' },
    ]);
  });
});
