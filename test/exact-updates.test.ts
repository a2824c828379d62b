import { conversations, createConversation, type Conversation, type ConversationFlavor } from "@grammyjs/conversations";
import { neon } from "@neondatabase/serverless";
import { sequentialize } from "@grammyjs/runner";
import { Bot, enhanceStorage, session, type Context, type SessionFlavor } from "grammy";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { z } from "zod";
import { countStatements } from "../dev/counting.js";
import { startFakeBotApi, type FakeBotApi } from "../dev/fake-bot-api.js";
import { botInfo, textMessage } from "../dev/telegram.js";
import { PostgresStorage, encryptedCodec, type PostgresClient } from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { useFixture } from "./support/fixture.js";
import { useLocalNeon } from "./support/neon-clients.js";
import { pgbouncerAvailability, startPgbouncer } from "./support/pgbouncer.js";

// A grammY update reads the session, runs the handler and writes the session back. These tests run
// such updates as serverless runs them: isolates with pools (and storages, and bots) of their own,
// touching one session at once, and check that no update's write-back undoes another's change.

type Session = Record<string, unknown>;
type SessionContext = Context & SessionFlavor<Session>;

describe("exact updates: a write-back never undoes a change made while its handler ran", () => {
  const db = useFixture(4);
  let api: FakeBotApi;
  const pools: pg.Pool[] = [];
  /** A pool of its own, as a separate isolate has. */
  const isolatePool = (connectionString = databaseUrl()) => {
    const pool = new pg.Pool({ connectionString, max: 3 });
    pools.push(pool);
    return pool;
  };
  beforeAll(async () => {
    api = await startFakeBotApi();
  });
  afterAll(async () => {
    await Promise.all(pools.map((pool) => pool.end()));
    await api.stop();
  });
  const newBot = () => new Bot<SessionContext>("123:offline", { botInfo, client: { apiRoot: api.apiRoot } });
  const row = async (table: string, key: string) =>
    (await db.admin(`SELECT value::text AS value FROM "${table}" WHERE key = $1`, [key]))[0]?.value as
      | string
      | undefined;
  /** A promise and the function that resolves it: a handler waits on it while the test acts. */
  const gate = () => {
    let open = () => {};
    const opened = new Promise<void>((resolve) => (open = resolve));
    return { opened, open };
  };

  it("an update() inside the handler is kept: ctx.session.count++ then update(key, { plan }) leaves both", async () => {
    const table = db.table("exact_handler_update");
    const counted = countStatements(isolatePool());
    const storage = new PostgresStorage<Session>({ client: counted.client, tableName: table });
    await storage.write("301", { count: 1 });
    const bot = newBot();
    bot.use(session({ initial: () => ({ count: 0 }), storage }));
    bot.command("upgrade", async (ctx) => {
      (ctx.session.count as number) += 1;
      await storage.update(String(ctx.chat.id), { plan: "pro" });
    });
    const before = counted.statements.length;
    await bot.handleUpdate(textMessage(301, "/upgrade"));
    expect(await row(table, "301")).toBe('{"count":2,"plan":"pro"}');
    // read, update, and the write-back merged at once onto what the update left: no failed set, no extra read.
    expect(counted.statements.length - before).toBe(3);
  });

  it.each([
    ["", {}],
    [" with a schema", { schema: z.object({ count: z.number().default(0), plan: z.string().optional() }) }],
  ] as const)(
    "an update() inside the handler of a chat with no session yet%s is kept beside initial()'s",
    async (_, options) => {
      const table = db.table("exact_handler_update_new");
      const storage = new PostgresStorage<Session>({ client: isolatePool(), tableName: table, ...options });
      const bot = newBot();
      bot.use(session({ initial: () => ({ count: 0 }), storage }));
      bot.command("upgrade", async (ctx) => {
        (ctx.session.count as number) += 1;
        await storage.update(String(ctx.chat.id), { plan: "pro" });
      });
      await bot.handleUpdate(textMessage(302, "/upgrade"));
      expect(await row(table, "302")).toBe('{"count":1,"plan":"pro"}');
    },
  );

  it.each([
    ["ours", '{"plan":"pro","count":0}'],
    ["throw", '{"plan":"pro","count":0}'],
  ] as const)(
    "a new chat's update() of a field initial() sets is kept, not undone by initial()'s value (\"%s\")",
    async (onConflict, expected) => {
      const table = db.table("exact_handler_update_initial");
      const storage = new PostgresStorage<Session>({ client: isolatePool(), tableName: table, onConflict });
      const bot = newBot();
      bot.use(session({ initial: () => ({ plan: "free", count: 0 }), storage }));
      bot.command("upgrade", async (ctx) => {
        await storage.update(String(ctx.chat.id), { plan: "pro" });
      });
      bot.command("count", (ctx) => void ((ctx.session.count as number) += 1));
      await bot.handleUpdate(textMessage(303, "/upgrade"));
      expect(await row(table, "303")).toBe(expected);
      // Later updates are write-backs of what was read, as ever.
      await bot.handleUpdate(textMessage(303, "/count"));
      expect(await row(table, "303")).toBe('{"plan":"pro","count":1}');
    },
  );

  it("a new chat's update() is kept when the handler reads the key after it, and a resolver is told there was no base", async () => {
    const table = db.table("exact_handler_update_reread");
    const bases: unknown[] = [];
    const storage = new PostgresStorage<Session>({
      client: isolatePool(),
      tableName: table,
      onConflict: (base, ours, theirs) => {
        bases.push(base);
        return { ...theirs, ...ours, plan: theirs?.plan };
      },
    });
    const bot = newBot();
    bot.use(session({ initial: () => ({ plan: "free", count: 0 }), storage }));
    const other = new PostgresStorage<Session>({ client: isolatePool(), tableName: table });
    bot.command("upgrade", async (ctx) => {
      (ctx.session.count as number) += 1;
      await storage.update(String(ctx.chat.id), { plan: "pro" });
      expect(await storage.read(String(ctx.chat.id))).toStrictEqual({ plan: "pro" });
      await other.update(String(ctx.chat.id), { count: 7 }); // another isolate
    });
    await bot.handleUpdate(textMessage(304, "/upgrade"));
    // count: both set it (the handler from initial()'s 0, the other isolate to 7): the resolver decides, told no base.
    expect(bases).toStrictEqual([undefined]);
    expect(await row(table, "304")).toBe('{"plan":"pro","count":1}');
  });

  it("another isolate's update() while the handler runs is kept: a payment webhook's { premium: true } survives", async () => {
    const table = db.table("exact_webhook");
    const storage = new PostgresStorage<Session>({ client: isolatePool(), tableName: table });
    const webhook = new PostgresStorage<Session>({ client: isolatePool(), tableName: table });
    await storage.write("302", { count: 2 });
    const handlerRunning = gate();
    const paymentDone = gate();
    const bot = newBot();
    bot.use(session({ initial: () => ({ count: 0 }), storage }));
    bot.command("count", async (ctx) => {
      (ctx.session.count as number) += 1;
      handlerRunning.open();
      await paymentDone.opened;
    });
    const update = bot.handleUpdate(textMessage(302, "/count"));
    await handlerRunning.opened;
    await webhook.update("302", { premium: true });
    paymentDone.open();
    await update;
    expect(await row(table, "302")).toBe('{"count":3,"premium":true}');
  });

  /** Two bots on clients of their own handle `perBot` updates of one chat at once, each counting its own field. */
  const twoIsolates = async (clients: [PostgresClient, PostgresClient], table: string, perBot: number) => {
    const bots = clients.map((client, i) => {
      const bot = newBot();
      bot.use(session({ initial: () => ({}), storage: new PostgresStorage<Session>({ client, tableName: table }) }));
      bot.on("message:text", (ctx) => {
        ctx.session[`n${i}`] = ((ctx.session[`n${i}`] as number | undefined) ?? 0) + 1;
      });
      return bot;
    });
    await Promise.all(
      bots.map(async (bot) => {
        for (let n = 0; n < perBot; n += 1) await bot.handleUpdate(textMessage(303, `+${n}`));
      }),
    );
    return JSON.parse((await row(table, "303")) ?? "null") as Session;
  };

  it("two isolates, one session: 100 updates each, each counting its own field, lose nothing", async () => {
    const table = db.table("exact_two_isolates");
    expect(await twoIsolates([isolatePool(), isolatePool()], table, 100)).toStrictEqual({ n0: 100, n1: 100 });
  });

  it("with encryptedCodec a read-only update costs one statement, and a modifying one two", async () => {
    const table = db.table("exact_encrypted");
    const counted = countStatements(isolatePool());
    const storage = new PostgresStorage<Session>({
      client: counted.client,
      tableName: table,
      codec: encryptedCodec({ secret: "e".repeat(32) }),
    });
    const bot = newBot();
    bot.use(session({ initial: () => ({ count: 0 }), storage }));
    bot.command("count", (ctx) => {
      (ctx.session.count as number) += 1;
    });
    bot.command("peek", (ctx) => ctx.reply(`count is ${String(ctx.session.count)}`));
    await bot.handleUpdate(textMessage(304, "/count"));
    const perUpdate = async (text: string) => {
      const before = counted.statements.length;
      await bot.handleUpdate(textMessage(304, text));
      return counted.statements.length - before;
    };
    expect(await perUpdate("/peek")).toBe(1);
    expect(await perUpdate("/count")).toBe(2);
    expect(await perUpdate("/peek")).toBe(1);
    expect(await storage.read("304")).toStrictEqual({ count: 2 });
  });

  it("randomized: 3 isolates, 5 chats, each isolate owning a field and sharing another; no owned change is lost", async () => {
    const isolates = 3;
    const chats = [311, 312, 313, 314, 315];
    // About 10,000 updates on a PostgreSQL server; fewer on in-process PGlite, which serves one statement at a time.
    const perChat = inject("backend") === "postgres" ? 667 : 40;
    const table = db.table("exact_random");
    const written = new Map<number, Set<string>>(chats.map((chat) => [chat, new Set<string>()]));
    const counts = chats.map(() => Array.from({ length: isolates }, () => 0));
    const bots = Array.from({ length: isolates }, (_, i) => {
      const bot = newBot();
      // In-process order per chat, as a bot on one instance keeps it; the isolates themselves run side by side.
      bot.use(sequentialize((ctx: Context) => ctx.chatId?.toString()));
      const storage = new PostgresStorage<Session>({ client: isolatePool(), tableName: table });
      bot.use(session({ initial: () => ({}), storage }));
      bot.on("message:text", (ctx) => {
        const [, owned, shared] = ctx.msg.text.split(" ");
        if (owned === "+") ctx.session[`owned${i}`] = ((ctx.session[`owned${i}`] as number | undefined) ?? 0) + 1;
        if (shared !== undefined) ctx.session.shared = shared;
      });
      return bot;
    });
    let updates = 0;
    await Promise.all(
      bots.flatMap((bot, i) =>
        chats.map(async (chat, c) => {
          for (let n = 0; n < perChat; n += 1) {
            const roll = Math.random();
            const owned = roll < 0.6 ? "+" : "."; // else read-only, or a change of the shared field only
            const shared = roll > 0.4 && roll < 0.8 ? `${i}-${n}` : undefined;
            if (owned === "+") (counts[c] as number[])[i] = ((counts[c] as number[])[i] ?? 0) + 1;
            if (shared !== undefined) written.get(chat)?.add(shared);
            await bot.handleUpdate(textMessage(chat, `x ${owned}${shared === undefined ? "" : ` ${shared}`}`));
            updates += 1;
          }
        }),
      ),
    );
    expect(updates).toBe(isolates * chats.length * perChat);
    for (const [c, chat] of chats.entries()) {
      const stored = JSON.parse((await row(table, String(chat))) ?? "{}") as Session;
      for (let i = 0; i < isolates; i += 1) {
        const expected = (counts[c] as number[])[i] ?? 0;
        expect(stored[`owned${i}`] ?? 0, `chat ${chat}, isolate ${i}`).toBe(expected);
      }
      if (stored.shared !== undefined) expect(written.get(chat)?.has(String(stored.shared))).toBe(true);
      const fields = Object.keys(stored).filter((field) => field !== "shared" && !field.startsWith("owned"));
      expect(fields).toStrictEqual([]);
    }
  }, 300_000);

  // The plugin writes its state as one field in a fresh envelope ({ version, state }) each time, so when two
  // isolates both change it, one write-back wins whole, merging or not (writeBacks: "overwrite" passes too): what
  // this shows is that the state that won is one the plugin replays, not that changes are merged.
  it("@grammyjs/conversations: concurrent updates of one chat in two isolates leave a state the plugin replays (one of them wins whole)", async () => {
    const table = db.table("exact_conversation");
    type FormContext = ConversationFlavor<Context>;
    async function form(conversation: Conversation<FormContext, Context>, ctx: Context) {
      await ctx.reply("What is your name?");
      const name = await conversation.form.text();
      await ctx.reply(`Hi ${name}! How old are you?`);
      const age = await conversation.form.number();
      await ctx.reply(`${name} is ${age}.`);
    }
    const bots = [isolatePool(), isolatePool()].map((pool) => {
      const bot = new Bot<FormContext>("123:offline", { botInfo, client: { apiRoot: api.apiRoot } });
      bot.use(conversations({ storage: new PostgresStorage({ client: pool, tableName: table }) }));
      bot.use(createConversation(form, "form"));
      bot.command("form", (ctx) => ctx.conversation.enter("form"));
      return bot;
    });
    const [a, b] = bots as [Bot<FormContext>, Bot<FormContext>];
    // Telegram delivers /form twice (a webhook timed out), to both isolates at once; then the user answers.
    await Promise.all([a.handleUpdate(textMessage(320, "/form")), b.handleUpdate(textMessage(320, "/form"))]);
    await Promise.all([a.handleUpdate(textMessage(320, "Ada")), b.handleUpdate(textMessage(320, "ignored?"))]);
    await a.handleUpdate(textMessage(320, "36"));
    const texts = api.textsTo(320);
    expect(texts.filter((text) => text === "What is your name?").length).toBeGreaterThanOrEqual(1);
    // Whichever write-back won, the state is one the plugin replays: the conversation finishes and leaves no state.
    const finished = texts.some((text) => /^(Ada|ignored\?) is 36\.$/.test(text));
    if (!finished) await b.handleUpdate(textMessage(320, "36"));
    expect(api.textsTo(320).some((text) => /^(Ada|ignored\?) is 36\.$/.test(text))).toBe(true);
    expect(await row(table, "320")).toBeUndefined();
  });

  it("enhanceStorage: its envelope is one field, so when both change the session the write-back wins; unchanged, it keeps theirs", async () => {
    const table = db.table("exact_enhanced");
    const enhanced = (pool: pg.Pool) =>
      enhanceStorage<Session>({ storage: new PostgresStorage({ client: pool, tableName: table }) });
    const [a, b] = [enhanced(isolatePool()), enhanced(isolatePool())];
    await a.write("k", { n: 1 });
    const read = (await a.read("k")) as Session;
    await b.write("k", { n: 1, other: true });
    await a.write("k", read); // unchanged: nothing to apply
    expect(await b.read("k")).toStrictEqual({ n: 1, other: true });
    const again = (await a.read("k")) as Session;
    await b.write("k", { n: 1, other: false });
    again.n = 2;
    await a.write("k", again); // the envelope's __d changed on both sides: this write-back wins
    expect(await b.read("k")).toStrictEqual({ n: 2, other: true });
  });

  describe("the same through PgBouncer in transaction mode and Neon's HTTP driver", () => {
    const neonLocal = useLocalNeon();
    const availability = pgbouncerAvailability(inject("backend"));

    it("two isolates behind PgBouncer (transaction mode) lose nothing", async (context) => {
      if ("unavailable" in availability) {
        // CI requires PgBouncer on a PostgreSQL server; on PGlite there is no server for it to pool.
        if (process.env.REQUIRE_PGBOUNCER === "1" && inject("backend") === "postgres") {
          throw new Error(availability.unavailable);
        }
        context.skip();
        return;
      }
      const bouncer = await startPgbouncer(availability.binary, databaseUrl());
      try {
        const table = db.table("exact_pgbouncer");
        const clients: [pg.Pool, pg.Pool] = [isolatePool(bouncer.url), isolatePool(bouncer.url)];
        expect(await twoIsolates(clients, table, 50)).toStrictEqual({ n0: 50, n1: 50 });
        await Promise.all(clients.map((pool) => pool.end()));
        pools.splice(pools.indexOf(clients[0]), 2);
      } finally {
        await bouncer.stop();
      }
    });

    it("two isolates on neon() over HTTP lose nothing", async () => {
      expect(neonLocal.endpoint).toBeDefined();
      const table = db.table("exact_neon");
      expect(await twoIsolates([neon(databaseUrl()), neon(databaseUrl())], table, 30)).toStrictEqual({
        n0: 30,
        n1: 30,
      });
    });
  });
});
