import { conversations, createConversation, type Conversation, type ConversationFlavor } from "@grammyjs/conversations";
import { sequentialize } from "@grammyjs/runner";
import { PsqlAdapter } from "@grammyjs/storage-psql";
import {
  Bot,
  enhanceStorage,
  lazySession,
  session,
  type Context,
  type LazySessionFlavor,
  type SessionFlavor,
  type StorageAdapter,
} from "grammy";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countStatements, statementsPerUpdate } from "../dev/counting.js";
import { startFakeBotApi, type FakeBotApi } from "../dev/fake-bot-api.js";
import { botInfo, textMessage } from "../dev/telegram.js";
import { PostgresStorage, prefixKeys } from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { useFixture } from "./support/fixture.js";

interface Counter {
  count: number;
}
type CounterContext = Context & SessionFlavor<Counter>;

describe("grammY end to end", () => {
  const db = useFixture(10);
  let api: FakeBotApi;
  beforeAll(async () => {
    api = await startFakeBotApi();
  });
  afterAll(() => api.stop());

  const newBot = <C extends Context>() => new Bot<C>("123:offline", { botInfo, client: { apiRoot: api.apiRoot } });

  /** /count changes the session, /peek only reads it, /reset deletes it. */
  function counterBot(storage: StorageAdapter<Counter>) {
    const bot = newBot<CounterContext>();
    bot.use(session({ initial: () => ({ count: 0 }), storage }));
    bot.command("count", (ctx) => ctx.reply(`count ${++ctx.session.count}`));
    bot.command("peek", (ctx) => ctx.reply(`count is ${ctx.session.count}`));
    bot.command("reset", (ctx) => {
      ctx.session = null as unknown as Counter;
      return ctx.reply("reset");
    });
    return bot;
  }

  describe("statements per update, against @grammyjs/storage-psql", () => {
    const perUpdate = async (storage: StorageAdapter<Counter>, counted: { statements: string[] }, chat: number) => {
      const bot = counterBot(storage);
      const first = await statementsPerUpdate(counted, bot, textMessage(chat, "/count"));
      const modifying = await statementsPerUpdate(counted, bot, textMessage(chat, "/count"));
      const readOnly = await statementsPerUpdate(counted, bot, textMessage(chat, "/peek"));
      const readOnlyAgain = await statementsPerUpdate(counted, bot, textMessage(chat, "/peek"));
      const reset = await statementsPerUpdate(counted, bot, textMessage(chat, "/reset"));
      return { first, modifying, readOnly, readOnlyAgain, reset };
    };

    it("costs 1 for a read-only update, 2 for a modifying one, read + delete for ctx.session = null", async () => {
      const counted = countStatements(db.pool);
      const storage = new PostgresStorage<Counter>({ client: counted.client, tableName: db.table("e2e_counts") });
      await storage.createTable();
      const ours = await perUpdate(storage, counted, 101);
      expect(ours).toStrictEqual({ first: 2, modifying: 2, readOnly: 1, readOnlyAgain: 1, reset: 2 });
      expect(api.textsTo(101)).toStrictEqual(["count 1", "count 2", "count is 2", "count is 2", "reset"]);
      expect(counted.statements.at(-1)).toMatch(/^DELETE/);
      expect(await storage.read("101")).toBeUndefined();
    });

    it("the same bot on @grammyjs/storage-psql spends 2 on every update, read-only or not", async () => {
      const client = new pg.Client({ connectionString: databaseUrl() });
      await client.connect();
      try {
        const counted = countStatements(client);
        const storage = (await PsqlAdapter.create({
          client: counted.client,
          tableName: db.table("e2e_psql"),
        })) as StorageAdapter<Counter>;
        const setup = counted.statements.length;
        const theirs = await perUpdate(storage, counted, 102);
        expect(setup).toBe(2); // two DDL statements on every instantiation
        expect(theirs).toStrictEqual({ first: 2, modifying: 2, readOnly: 2, readOnlyAgain: 2, reset: 2 });
        const lazy = newBot<Context & LazySessionFlavor<Counter>>();
        lazy.use(lazySession({ initial: () => ({ count: 0 }), storage }));
        lazy.command("ping", (ctx) => ctx.reply("pong"));
        expect(await statementsPerUpdate(counted, lazy, textMessage(102, "/ping"))).toBe(0);
      } finally {
        await client.end();
      }
    });

    it("lazySession: 0 statements when the handler never touches the session", async () => {
      const counted = countStatements(db.pool);
      const storage = new PostgresStorage<Counter>({ client: counted.client, tableName: db.table("e2e_lazy") });
      await storage.createTable();
      const bot = newBot<Context & LazySessionFlavor<Counter>>();
      bot.use(lazySession({ initial: () => ({ count: 0 }), storage }));
      bot.command("ping", (ctx) => ctx.reply("pong"));
      bot.command("count", async (ctx) => {
        const session = await ctx.session;
        session.count += 1;
        return ctx.reply(`count ${session.count}`);
      });
      bot.command("peek", async (ctx) => ctx.reply(`count is ${(await ctx.session).count}`));
      expect(await statementsPerUpdate(counted, bot, textMessage(103, "/ping"))).toBe(0);
      expect(await statementsPerUpdate(counted, bot, textMessage(103, "/count"))).toBe(2);
      expect(await statementsPerUpdate(counted, bot, textMessage(103, "/peek"))).toBe(1);
      expect(api.textsTo(103)).toStrictEqual(["pong", "count 1", "count is 1"]);
    });
  });

  it("multi sessions: one storage per fragment, in one table under different prefixes", async () => {
    const name = db.table("e2e_multi");
    type Multi = Context & SessionFlavor<{ counter: Counter; profile: { name: string } }>;
    const bot = newBot<Multi>();
    bot.use(
      session({
        type: "multi",
        counter: {
          initial: () => ({ count: 0 }),
          storage: new PostgresStorage({ client: db.pool, tableName: name, keyBuilder: prefixKeys("counter") }),
        },
        profile: {
          initial: () => ({ name: "anonymous" }),
          storage: new PostgresStorage({ client: db.pool, tableName: name, keyBuilder: prefixKeys("profile") }),
        },
      }),
    );
    bot.command("name", (ctx) => {
      ctx.session.profile.name = ctx.match;
      ctx.session.counter.count += 1;
    });
    await bot.handleUpdate(textMessage(104, "/name Ada"));
    await bot.handleUpdate(textMessage(104, "/name Grace"));
    const rows = await db.admin(`SELECT key, value::text AS value FROM "${name}" ORDER BY key`);
    expect(rows).toStrictEqual([
      { key: "counter:104", value: '{"count":2}' },
      { key: "profile:104", value: '{"name":"Grace"}' },
    ]);
  });

  it("enhanceStorage wrapping our storage: migrations and expiry from grammY work on top", async () => {
    const name = db.table("e2e_enhanced");
    const inner = new PostgresStorage<
      Parameters<typeof enhanceStorage<Counter>>[0]["storage"] extends StorageAdapter<infer E> ? E : never
    >({
      client: db.pool,
      tableName: name,
    });
    await inner.write("105", { __d: { total: 41 } as unknown as Counter, v: 0 }); // version 0 stored { total }
    const storage = enhanceStorage<Counter>({
      storage: inner,
      millisecondsToLive: 60_000,
      migrations: { 1: (old: { total: number }) => ({ count: old.total }) },
    });
    const bot = counterBot(storage);
    await bot.handleUpdate(textMessage(105, "/count"));
    expect(api.textsTo(105)).toStrictEqual(["count 42"]);
    const [row] = await db.admin(`SELECT value FROM "${name}" WHERE key = '105'`);
    expect(row?.value).toMatchObject({ __d: { count: 42 }, v: 1 });
    expect((row?.value as { e: number }).e).toBeGreaterThan(Date.now());
  });

  it("a handler that throws writes nothing back", async () => {
    const counted = countStatements(db.pool);
    const storage = new PostgresStorage<Counter>({ client: counted.client, tableName: db.table("e2e_throw") });
    await storage.write("106", { count: 5 });
    const bot = newBot<CounterContext>();
    bot.use(session({ initial: () => ({ count: 0 }), storage }));
    bot.command("explode", (ctx) => {
      ctx.session.count = 999;
      throw new Error("boom");
    });
    const before = counted.statements.length;
    await expect(bot.handleUpdate(textMessage(106, "/explode"))).rejects.toThrow(/boom/);
    expect(counted.statements.slice(before).map((text) => text.split(" ")[0])).toStrictEqual(["SELECT"]);
    expect(await storage.read("106")).toStrictEqual({ count: 5 });
  });

  describe("conversations 2.x with our storage", () => {
    type FormContext = ConversationFlavor<Context>;

    async function form(conversation: Conversation<FormContext, Context>, ctx: Context) {
      await ctx.reply("What is your name?");
      const name = await conversation.form.text();
      await ctx.reply(`Hi ${name}! How old are you?`);
      const age = await conversation.form.number();
      await ctx.reply(`${name} is ${age}.`);
    }

    /** A fresh process: new Bot, new PostgresStorage, new connection pool. */
    async function restartedBot(tableName: string) {
      const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
      const bot = newBot<FormContext>();
      bot.use(conversations({ storage: new PostgresStorage({ client: pool, tableName }) }));
      bot.use(createConversation(form, "form"));
      bot.command("form", (ctx) => ctx.conversation.enter("form"));
      return { bot, stop: () => pool.end() };
    }

    it("a conversation waiting for several messages survives restarts between them", async () => {
      const name = db.table("e2e_conversation");
      for (const text of ["/form", "Ada", "thirty", "36"]) {
        const { bot, stop } = await restartedBot(name);
        await bot.handleUpdate(textMessage(107, text));
        await stop();
      }
      expect(api.textsTo(107)).toStrictEqual(["What is your name?", "Hi Ada! How old are you?", "Ada is 36."]);
      const rows = await db.admin(`SELECT key FROM "${name}"`);
      expect(rows).toStrictEqual([]); // a finished conversation leaves no state behind
    });

    it("keeps the waiting conversation in the table between messages", async () => {
      const name = db.table("e2e_conversation_state");
      const { bot, stop } = await restartedBot(name);
      await bot.handleUpdate(textMessage(108, "/form"));
      await stop();
      const [row] = await db.admin(`SELECT key, value::text AS value FROM "${name}"`);
      expect(row?.key).toBe("108");
      expect(JSON.parse(String(row?.value))).toMatchObject({ state: { form: [expect.any(Object)] } });
    });
  });

  describe("200 updates for 20 chats at once", () => {
    const chats = Array.from({ length: 20 }, (_, i) => 2000 + i);
    const updates = chats.flatMap((chat) => Array.from({ length: 10 }, (_, n) => ({ chat, n })));
    // Interleaved as they would arrive: chat 0 update 0, chat 1 update 0, …
    const arrival = Array.from({ length: 10 }, (_, n) => chats.map((chat) => ({ chat, n }))).flat();
    type Log = Context & SessionFlavor<{ seen: number[] }>;

    function logBot(tableName: string, sequential: boolean) {
      const bot = newBot<Log>();
      const getSessionKey = (ctx: Context) => ctx.chatId?.toString();
      if (sequential) bot.use(sequentialize(getSessionKey));
      bot.use(
        session({
          initial: () => ({ seen: [] }),
          storage: new PostgresStorage({ client: db.pool, tableName }),
          getSessionKey,
        }),
      );
      bot.on("message:text", (ctx) => {
        ctx.session.seen = [...ctx.session.seen, Number(ctx.msg.text)];
      });
      return bot;
    }

    it("with grammY's sequentialize per chat, every chat ends as sequential processing would leave it", async () => {
      const name = db.table("e2e_concurrent");
      const bot = logBot(name, true);
      await Promise.all(arrival.map(({ chat, n }) => bot.handleUpdate(textMessage(chat, String(n)))));
      const expected = Object.fromEntries(
        chats.map((chat) => [String(chat), { seen: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }]),
      );
      const rows = await db.admin(`SELECT key, value FROM "${name}"`);
      expect(Object.fromEntries(rows.map((row) => [row.key, row.value]))).toStrictEqual(expected);
      expect(updates).toHaveLength(200);
    });

    it("without it, concurrent updates of one chat overwrite each other (so sequentialize, or use update())", async () => {
      const name = db.table("e2e_unsequenced");
      const bot = logBot(name, false);
      await Promise.all(arrival.map(({ chat, n }) => bot.handleUpdate(textMessage(chat, String(n)))));
      const rows = await db.admin(`SELECT value FROM "${name}"`);
      const lengths = rows.map((row) => (row.value as { seen: number[] }).seen.length);
      expect(lengths).toHaveLength(20);
      expect(Math.min(...lengths)).toBeLessThan(10);
    });
  });
});
