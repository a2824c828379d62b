import { PsqlAdapter } from "@grammyjs/storage-psql";
import {
  Bot,
  enhanceStorage,
  session,
  type Context,
  type Enhance,
  type SessionFlavor,
  type StorageAdapter,
} from "grammy";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countStatements } from "../dev/counting.js";
import { startFakeBotApi, type FakeBotApi } from "../dev/fake-bot-api.js";
import { botInfo, textMessage } from "../dev/telegram.js";
import { PostgresStorage, migrateFromStoragePsqlSql, prefixKeys, type PostgresStorageError } from "../src/index.js";
import { tableExists } from "./support/clients.js";
import { collect, useFixture } from "./support/fixture.js";

interface Counter {
  count: number;
}
interface Profile {
  name: string;
  visits: number;
}
type BotContext = Context & SessionFlavor<{ counter: Counter; profile: Profile }>;

const HOUR = 3_600_000;

describe("coming from @grammyjs/storage-psql", () => {
  const db = useFixture();
  let api: FakeBotApi;
  beforeAll(async () => {
    api = await startFakeBotApi();
  });
  afterAll(() => api.stop());

  /** A storage-psql table, created as storage-psql creates it (its types ask for a pg Client; it calls only query(), which a Pool has). */
  const psqlTable = async <T>(label: string) => {
    const tableName = db.table(label);
    const adapter = await PsqlAdapter.create({ client: db.pool as unknown as pg.Client, tableName });
    return { tableName, adapter: adapter as unknown as StorageAdapter<T> };
  };
  const migrate = (options: Parameters<typeof migrateFromStoragePsqlSql>[0]) =>
    db.pool.query(migrateFromStoragePsqlSql(options));

  /** Which sessions grammY had to start from initial(). */
  let initials: string[] = [];

  /**
   * The same bot before and after the switch; only its storages change. Two
   * sessions per chat (grammY's default keys, the chat id): a plain counter, and a
   * profile behind enhanceStorage with a time to live and a migration.
   */
  function bot(counters: StorageAdapter<Counter>, profiles: StorageAdapter<Enhance<Profile>>) {
    const bot = new Bot<BotContext>("123:offline", { botInfo, client: { apiRoot: api.apiRoot } });
    bot.use(
      session({
        type: "multi",
        counter: { storage: counters, initial: () => (initials.push("counter"), { count: 0 }) },
        profile: {
          storage: enhanceStorage<Profile>({
            storage: profiles,
            millisecondsToLive: HOUR,
            migrations: { 1: (old: { name: string }) => ({ ...old, visits: 0 }) },
          }),
          initial: () => (initials.push("profile"), { name: "anonymous", visits: 0 }),
        },
      }),
    );
    bot.command("count", (ctx) => {
      ctx.session.profile.visits += 1;
      return ctx.reply(`count ${++ctx.session.counter.count}`);
    });
    bot.command("name", (ctx) => {
      ctx.session.profile.name = ctx.match;
      ctx.session.profile.visits += 1;
    });
    bot.command("peek", (ctx) => {
      const { counter, profile } = ctx.session;
      return ctx.reply(`${profile.name}: count ${counter.count}, visits ${profile.visits}`);
    });
    return bot;
  }

  /** Sends /peek in every chat and returns the answers. */
  async function peek(target: Bot<BotContext>, chats: number[]): Promise<string[]> {
    for (const chat of chats) await target.handleUpdate(textMessage(chat, "/peek", 201));
    return chats.map((chat) => api.textsTo(chat).at(-1) ?? "");
  }

  it("every user continues where they were, with plain and enhanceStorage sessions, instead of starting at initial()", async () => {
    const psqlCounters = await psqlTable<Counter>("psql_counters");
    const psqlProfiles = await psqlTable<Enhance<Profile>>("psql_profiles");
    const before = bot(psqlCounters.adapter, psqlProfiles.adapter);
    for (const [chat, text] of [
      [201, "/name Ada"],
      [201, "/count"],
      [201, "/count"],
      [202, "/count"],
      [-1001, "/count"],
      [203, "/name Grace"],
    ] as const) {
      await before.handleUpdate(textMessage(chat, text, 201));
    }
    const chats = [201, 202, -1001, 203];
    const answers = await peek(before, chats);
    expect(answers).toStrictEqual([
      "Ada: count 2, visits 3",
      "anonymous: count 1, visits 1",
      "anonymous: count 1, visits 1",
      "Grace: count 0, visits 1",
    ]);
    // Written before enhanceStorage was added (no envelope, so version 0), and one whose time to live is over.
    await psqlCounters.adapter.write("204", { count: 7 });
    await (psqlProfiles.adapter as StorageAdapter<unknown>).write("204", { name: "Linus" });
    await psqlCounters.adapter.write("205", { count: 3 });
    await psqlProfiles.adapter.write("205", { __d: { name: "Gone", visits: 9 }, v: 1, e: Date.now() - 1000 });

    const counters = db.table("counters");
    const profiles = db.table("profiles");
    await migrate({ from: psqlCounters.tableName, to: counters });
    await migrate({ from: psqlProfiles.tableName, to: profiles });
    for (const [from, to] of [
      [psqlCounters.tableName, counters],
      [psqlProfiles.tableName, profiles],
    ]) {
      const copied = await db.admin(`SELECT key, value::text AS value, expires_at FROM "${to}" ORDER BY key`);
      const original = await db.admin(`SELECT key, value, NULL::timestamptz AS expires_at FROM "${from}" ORDER BY key`);
      expect(copied).toStrictEqual(original); // the very text storage-psql wrote, keys as they were
    }

    const counted = countStatements(db.pool);
    const after = bot(
      new PostgresStorage<Counter>({ client: counted.client, tableName: counters }),
      new PostgresStorage<Enhance<Profile>>({ client: db.pool, tableName: profiles }),
    );
    initials = [];
    expect(await peek(after, chats)).toStrictEqual(answers);
    expect(initials).toStrictEqual([]);
    // Migrated values are the text this storage would write, so grammY's unchanged write-backs cost nothing.
    // (Only reads: a PGlite server may have a read run again unprepared, so the count is not checked.)
    expect(new Set(counted.statements.map((text) => text.split(" ")[0]))).toStrictEqual(new Set(["SELECT"]));

    expect(await peek(after, [204])).toStrictEqual(["Linus: count 7, visits 0"]); // enhanceStorage migrated it on read
    expect(initials).toStrictEqual([]);
    expect(await peek(after, [205])).toStrictEqual(["anonymous: count 3, visits 0"]); // expired before, expired still
    expect(initials).toStrictEqual(["profile"]);

    await after.handleUpdate(textMessage(201, "/count"));
    expect(api.textsTo(201).at(-1)).toBe("count 3");
    const [row] = await db.admin(`SELECT value FROM "${profiles}" WHERE key = '201'`);
    expect(row?.value).toMatchObject({ __d: { name: "Ada", visits: 4 }, v: 1 });
  });

  it("running it again changes nothing, and a session the storage already holds is never overwritten", async () => {
    const psql = await psqlTable<Counter>("psql_rerun");
    await psql.adapter.write("1", { count: 1 });
    await psql.adapter.write("2", { count: 2 });
    await db.admin(`INSERT INTO "${psql.tableName}" (key, value) VALUES ('3', NULL)`); // holds no session
    const to = db.table("rerun");
    const storage = new PostgresStorage<Counter>({ client: db.pool, tableName: to });
    await storage.write("2", { count: 20 }); // already on the new storage: newer

    await migrate({ from: psql.tableName, to });
    expect(await storage.read("1")).toStrictEqual({ count: 1 });
    expect(await storage.read("2")).toStrictEqual({ count: 20 });
    expect(await storage.has("3")).toBe(false);

    const snapshot = () =>
      db.admin(`SELECT key, value::text AS value, updated_at, expires_at FROM "${to}" ORDER BY key`);
    const first = await snapshot();
    await psql.adapter.write("1", { count: 100 });
    await migrate({ from: psql.tableName, to });
    await migrate({ from: psql.tableName, to });
    expect(await snapshot()).toStrictEqual(first);
  });

  it("puts the prefix of prefixKeys before every key, so several bots can move into one table", async () => {
    const to = db.table("prefixed");
    const prefixes = ["bot1", "it's $2"];
    for (const [index, prefix] of prefixes.entries()) {
      const psql = await psqlTable<Counter>(`psql_prefix${index}`);
      await psql.adapter.write("1", { count: index });
      await psql.adapter.write("-1001", { count: 10 + index });
      await migrate({ from: psql.tableName, to, keyBuilder: prefixKeys(prefix) });
    }
    for (const [index, prefix] of prefixes.entries()) {
      const storage = new PostgresStorage<Counter>({ client: db.pool, tableName: to, keyBuilder: prefixKeys(prefix) });
      expect(await collect(storage.readAllEntries())).toStrictEqual([
        ["-1001", { count: 10 + index }],
        ["1", { count: index }],
      ]);
    }
    const keys = await db.admin(`SELECT key FROM "${to}" ORDER BY key`);
    expect(keys.map((row) => row.key)).toStrictEqual(["bot1:-1001", "bot1:1", "it's $2:-1001", "it's $2:1"]);
  });

  it("copies nothing when a value is not JSON, and names its key", async () => {
    const psql = await psqlTable<Counter>("psql_broken");
    await psql.adapter.write("1", { count: 1 });
    await db.admin(`INSERT INTO "${psql.tableName}" (key, value) VALUES ('42', '{"count":')`);
    const to = db.table("broken");
    const failed = await migrate({ from: psql.tableName, to }).catch((error: PostgresStorageError) => error);
    expect(failed).toMatchObject({
      code: "22P02",
      message: expect.stringMatching(/the value of key "42" in ".*" is not JSON; nothing was copied/),
    });
    expect(await tableExists(db.admin, to)).toBe(false); // even the table it created is rolled back
  });

  it("refuses what SQL cannot do, before anything is sent", () => {
    expect(migrateFromStoragePsqlSql()).toMatch(
      /INSERT INTO "grammy_sessions" \(key, value\)\s+SELECT key, value::json FROM "sessions"/,
    );
    expect(() => migrateFromStoragePsqlSql({ keyBuilder: (key) => `bot1:${key}` })).toThrow(/only in JavaScript/);
    expect(() =>
      migrateFromStoragePsqlSql({ keyBuilder: { prefix: "bot1:", build: (key) => `bot1:${key.toUpperCase()}!` } }),
    ).toThrow(/only in JavaScript/);
    expect(() => migrateFromStoragePsqlSql({ from: "sessions", to: "sessions" })).toThrow(/both/);
    expect(() => migrateFromStoragePsqlSql({ from: "sessions; DROP TABLE x" })).toThrow(/not allowed/);
  });
});
