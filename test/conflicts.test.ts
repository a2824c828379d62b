import * as devalue from "devalue";
import { Bot, lazySession, session, type Context, type LazySessionFlavor, type SessionFlavor } from "grammy";
import pg from "pg";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { countStatements } from "../dev/counting.js";
import { startFakeBotApi, type FakeBotApi } from "../dev/fake-bot-api.js";
import { botInfo, textMessage } from "../dev/telegram.js";
import {
  PostgresStorage,
  PostgresStorageError,
  StorageConflictError,
  StorageOptionError,
  StorageValidationError,
  compressedCodec,
  encryptedCodec,
  jsonWithDates,
  prefixKeys,
  type Codec,
  type PostgresStorageOptions,
  type QueryParameter,
} from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { useFixture, useIsolates } from "./support/fixture.js";
import { losingFirstSetAnswer } from "./support/lost-answer.js";

type Session = Record<string, unknown>;

describe("write-back conflicts: what onConflict and writeBacks decide", () => {
  const db = useFixture(4);
  /** A pool of its own, as a separate isolate has. */
  const isolate = useIsolates();
  const row = async (table: string) =>
    (await db.admin(`SELECT value::text AS value FROM "${table}" WHERE key = 'k'`))[0]?.value as string | undefined;

  /**
   * A reads { s: "x", a: 1 }; B (another isolate) sets s to "t" and b to 2; A writes back s = "o" and c = 3.
   * Answers what the row holds after A's write-back, or A's error.
   */
  const conflict = async (options: Partial<PostgresStorageOptions<Session>>, theirs: Session | null = null) => {
    const table = db.table("conflict");
    const a = new PostgresStorage<Session>({ client: isolate(), tableName: table, ...options });
    const b = new PostgresStorage<Session>({ client: isolate(), tableName: table });
    await b.write("k", { s: "x", a: 1 });
    const session = (await a.read("k")) as Session;
    if (theirs === null) await b.delete("k");
    else await b.write("k", theirs);
    session.s = "o";
    session.c = 3;
    const error = await a.write("k", session).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    return { stored: await row(table), error };
  };
  const theirs = { s: "t", a: 1, b: 2 };

  it('"ours" (the default): the write-back wins the field both changed; the rest is merged', async () => {
    expect(await conflict({}, theirs)).toStrictEqual({ stored: '{"s":"o","a":1,"c":3,"b":2}', error: undefined });
  });

  it('"theirs": the other writer keeps the field both changed; the write-back\'s other changes are applied', async () => {
    expect(await conflict({ onConflict: "theirs" }, theirs)).toStrictEqual({
      stored: '{"s":"t","a":1,"c":3,"b":2}',
      error: undefined,
    });
  });

  it('"throw": StorageConflictError naming the field, and nothing written', async () => {
    const { stored, error } = await conflict({ onConflict: "throw" }, theirs);
    expect(error).toBeInstanceOf(StorageConflictError);
    expect((error as StorageConflictError).fields).toStrictEqual(["s"]);
    expect((error as StorageConflictError).key).toBe("k");
    expect((error as Error).message).toMatch(/another writer changed "s" since it was read/);
    expect(stored).toBe(JSON.stringify(theirs));
  });

  it('"throw" after a set whose answer was lost: in doubt, since the lost try was stored before the other writer\'s change', async () => {
    const table = db.table("conflict_lost_answer");
    const other = new PostgresStorage<Session>({ client: isolate(), tableName: table });
    await other.write("k", { s: "x", a: 1 });
    // The compare-and-set reaches the database and commits; before its answer arrives another writer changes s,
    // and then the connection breaks, so the answer is lost.
    const lossy = losingFirstSetAnswer(isolate(), () => other.write("k", { s: "t", a: 1 }));
    const a = new PostgresStorage<Session>({
      client: lossy,
      tableName: table,
      onConflict: "throw",
      retry: { attempts: 3, baseDelayMs: 0, maxDelayMs: 0 },
    });
    const session = (await a.read("k")) as Session;
    session.s = "o";
    const error = (await a.write("k", session).catch((failure: unknown) => failure)) as StorageConflictError;
    expect(error).toBeInstanceOf(StorageConflictError);
    expect({ fields: error.fields, inDoubt: error.inDoubt }).toStrictEqual({ fields: ["s"], inDoubt: true });
    expect(error.message).toMatch(
      /^a try whose answer was lost may have been written before the other writer's change/,
    );
    expect(await row(table)).toBe('{"s":"t","a":1}');
    // Without a lost answer, the same conflict is certain: nothing was written.
    expect((await conflict({ onConflict: "throw" }, theirs)).error).toMatchObject({ inDoubt: false });
  });

  it.each([
    ["throw", "rejects in doubt", '{"step":"idle","n":2}'],
    ["theirs", "keeps the row", '{"step":"idle","n":2}'],
    ["ours", "takes its own value", '{"step":"name","n":2}'],
  ] as const)(
    'after a set whose answer was lost, a field another writer holds at its read value is a conflict: "%s" %s',
    async (onConflict, _, expected) => {
      const table = db.table("conflict_lost_reverted");
      const other = new PostgresStorage<Session>({ client: isolate(), tableName: table });
      await other.write("k", { step: "idle", n: 1 });
      // A's set commits, and its answer is lost; meanwhile another isolate reads A's value, puts step back and sets n.
      const lossy = losingFirstSetAnswer(isolate(), async () => {
        const theirs = (await other.read("k")) as Session;
        expect(theirs).toStrictEqual({ step: "name", n: 1 });
        theirs.step = "idle";
        theirs.n = 2;
        await other.write("k", theirs);
      });
      const a = new PostgresStorage<Session>({
        client: lossy,
        tableName: table,
        onConflict,
        retry: { attempts: 3, baseDelayMs: 0, maxDelayMs: 0 },
      });
      const session = (await a.read("k")) as Session;
      session.step = "name";
      const error = await a.write("k", session).catch((failure: unknown) => failure);
      if (onConflict === "throw") {
        expect(error).toBeInstanceOf(StorageConflictError);
        expect(error).toMatchObject({ fields: ["step"], inDoubt: true });
      } else {
        expect(error).toBeUndefined();
      }
      expect(await row(table)).toBe(expected);
    },
  );

  it("after a set whose answer was lost, another writer's value the schema refuses leaves the write in doubt", async () => {
    const table = db.table("conflict_lost_invalid");
    const other = new PostgresStorage<Session>({ client: isolate(), tableName: table });
    await other.write("k", { s: "x", a: 1 });
    const lossy = losingFirstSetAnswer(isolate(), () => other.write("k", { s: 7 }));
    const a = new PostgresStorage({
      client: lossy,
      tableName: table,
      schema: z.object({ s: z.string(), a: z.number() }),
      retry: { attempts: 3, baseDelayMs: 0, maxDelayMs: 0 },
    });
    const session = (await a.read("k")) as { s: string; a: number };
    session.s = "o";
    const error = (await a.write("k", session).catch((failure: unknown) => failure)) as StorageValidationError;
    expect(error).toBeInstanceOf(StorageValidationError);
    expect({ operation: error.operation, key: error.key, inDoubt: error.inDoubt }).toStrictEqual({
      operation: "write",
      key: "k",
      inDoubt: true,
    });
    expect(error.message).toMatch(
      /fails the schema: .*\. A try of this write whose answer was lost may have been stored before another writer's change replaced it$/,
    );
    expect(await row(table)).toBe('{"s":7}');
  });

  it("after a set whose answer was lost, a statement that fails with the server's answer leaves the write in doubt", async () => {
    const table = db.table("conflict_lost_then_refused");
    const other = new PostgresStorage<Session>({ client: isolate(), tableName: table });
    await other.write("k", { s: "x", a: 1 });
    const lossy = losingFirstSetAnswer(isolate(), () => other.write("k", { s: "t", a: 1 }));
    let lost = false;
    // The read that follows the retried set is refused by the server, which proves that read did nothing; the lost set may still have been stored.
    const refusing = {
      query: async (text: string, params: QueryParameter[]) => {
        if (lost && text.startsWith("SELECT")) throw Object.assign(new Error("permission denied"), { code: "42501" });
        return lossy.query(text, params).catch((error: unknown) => {
          lost = true;
          throw error;
        });
      },
    };
    const a = new PostgresStorage<Session>({
      client: refusing,
      tableName: table,
      retry: { attempts: 3, baseDelayMs: 0, maxDelayMs: 0 },
    });
    const session = (await a.read("k")) as Session;
    session.s = "o";
    const error = (await a.write("k", session).catch((failure: unknown) => failure)) as PostgresStorageError;
    expect({ code: error.code, operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({
      code: "42501",
      operation: "write",
      inDoubt: true,
    });
    expect(error.message).toMatch(/It may have taken effect; read the key to see$/);
    expect(await row(table)).toBe('{"s":"t","a":1}');
  });

  it("a function: called with base, ours, theirs and the fields; what it answers is stored (undefined: nothing)", async () => {
    const calls: unknown[] = [];
    const { stored } = await conflict(
      {
        onConflict: (base, ours, other, info) => {
          calls.push({ base, ours, theirs: other, info });
          return { ...other, ...ours, s: `${String(ours.s)}+${String(other?.s)}` };
        },
      },
      theirs,
    );
    expect(calls).toStrictEqual([
      { base: { s: "x", a: 1 }, ours: { s: "o", a: 1, c: 3 }, theirs, info: { key: "k", fields: ["s"] } },
    ]);
    expect(stored).toBe('{"s":"o+t","a":1,"b":2,"c":3}');
    expect((await conflict({ onConflict: () => undefined }, theirs)).stored).toBe(JSON.stringify(theirs));
  });

  it("a function is called only for a conflict: a merge of different fields does not ask it", async () => {
    let calls = 0;
    const onConflict = () => {
      calls += 1;
      return undefined;
    };
    const { stored } = await conflict({ onConflict }, { s: "x", a: 1, b: 2 });
    expect(calls).toBe(0);
    expect(stored).toBe('{"s":"o","a":1,"c":3,"b":2}');
  });

  it('the row deleted meanwhile: by default stored again whole; "theirs" leaves it deleted', async () => {
    expect((await conflict({})).stored).toBe('{"s":"o","a":1,"c":3}');
    expect((await conflict({ onConflict: "theirs" })).stored).toBeUndefined();
    const thrown = await conflict({ onConflict: "throw" });
    expect((thrown.error as StorageConflictError).fields).toStrictEqual([""]);
  });

  it('writeBacks: "overwrite": a changed write-back replaces the row, as a plain write does', async () => {
    expect((await conflict({ writeBacks: "overwrite" }, theirs)).stored).toBe('{"s":"o","a":1,"c":3}');
  });

  it("a merge that fails the schema is decided as a conflict of the whole value, never written invalid", async () => {
    // Exactly one way to pay: A picks card, B picks cash meanwhile; merged, the session would hold both.
    const Payment = z
      .object({ card: z.string().optional(), cash: z.boolean().optional() })
      .refine((v) => v.card === undefined || v.cash === undefined, "one way to pay");
    const run = async (onConflict: PostgresStorageOptions<Session>["onConflict"]) => {
      const table = db.table("conflict_schema");
      const options = { tableName: table, schema: Payment as never, onConflict };
      const a = new PostgresStorage<Session>({ client: isolate(), ...options });
      const b = new PostgresStorage<Session>({ client: isolate(), tableName: table });
      await b.write("k", {});
      const session = (await a.read("k")) as Session;
      await b.write("k", { cash: true });
      session.card = "visa";
      const error = await a.write("k", session).catch((failure: unknown) => failure);
      return { stored: await row(table), error };
    };
    expect((await run("ours")).stored).toBe('{"card":"visa"}');
    expect((await run("theirs")).stored).toBe('{"cash":true}');
    const thrown = await run("throw");
    expect((thrown.error as StorageConflictError).fields).toStrictEqual([]);
    expect(thrown.stored).toBe('{"cash":true}');
  });

  it("refuses an onConflict or writeBacks it does not know", () => {
    const make = (options: object) => () =>
      new PostgresStorage({ client: db.pool, ...(options as Partial<PostgresStorageOptions>) });
    expect(make({ onConflict: "mine" })).toThrow(StorageOptionError);
    expect(make({ writeBacks: "replace" })).toThrow(/writeBacks must be "merge" or "overwrite"/);
  });
});

describe("statements per grammY update, with every codec, when nothing conflicts", () => {
  const db = useFixture(2);
  let api: FakeBotApi;
  beforeAll(async () => {
    api = await startFakeBotApi();
  });
  afterAll(() => api.stop());
  // Whether the codec stores Dates, so that the session holds one too.
  const codecs: [string, Codec | undefined, boolean][] = [
    ["the default codec", undefined, false],
    ["JSON", JSON, false],
    ["jsonWithDates", jsonWithDates, true],
    ["superjson", superjson, true],
    ["devalue", devalue, true],
    ["encryptedCodec", encryptedCodec({ secret: "c".repeat(32) }), false],
    ["encryptedCodec around superjson", encryptedCodec({ secret: "d".repeat(32), codec: superjson }), true],
    ["compressedCodec", compressedCodec({ threshold: 1 }), false],
    [
      "encryptedCodec around compressedCodec",
      encryptedCodec({ secret: "f".repeat(32), codec: compressedCodec({ threshold: 1 }) }),
      false,
    ],
  ];

  it.each(codecs)("%s: read-only 1, modifying 2, an untouched lazySession 0", async (_label, codec, withDate) => {
    const counted = countStatements(db.pool);
    const tableName = db.table("per_codec");
    const storage = new PostgresStorage<{ count: number; at: Date }>({ client: counted.client, tableName, codec });
    const bot = new Bot<Context & SessionFlavor<{ count: number; at?: Date }>>("123:offline", {
      botInfo,
      client: { apiRoot: api.apiRoot },
    });
    bot.use(session({ initial: () => ({ count: 0 }), storage: storage as never }));
    bot.command("count", (ctx) => {
      ctx.session.count += 1;
      if (withDate) ctx.session.at = new Date(0);
    });
    bot.command("peek", (ctx) => ctx.reply(`count is ${ctx.session.count}`));
    const lazy = new Bot<Context & LazySessionFlavor<{ count: number }>>("123:offline", {
      botInfo,
      client: { apiRoot: api.apiRoot },
    });
    lazy.use(lazySession({ initial: () => ({ count: 0 }), storage: storage as never }));
    lazy.on("message", () => {});
    const cost = async (target: { handleUpdate(update: never): Promise<void> }, text: string) => {
      const before = counted.statements.length;
      await target.handleUpdate(textMessage(401, text) as never);
      return counted.statements.length - before;
    };
    await cost(bot, "/count"); // creates the table and the row
    expect([await cost(bot, "/peek"), await cost(bot, "/count"), await cost(lazy, "hello")]).toStrictEqual([1, 2, 0]);
  });
});

describe("multi sessions: each fragment under a key of its own merges on its own", () => {
  const db = useFixture(2);
  let api: FakeBotApi;
  beforeAll(async () => {
    api = await startFakeBotApi();
  });
  afterAll(() => api.stop());

  it("two isolates, one changing the counter fragment and one the profile, at once: both kept", async () => {
    const tableName = db.table("multi_isolates");
    type Multi = Context & SessionFlavor<{ counter: { count: number }; profile: { name: string } }>;
    const pools = [0, 1].map(() => new pg.Pool({ connectionString: databaseUrl(), max: 2 }));
    try {
      const bots = pools.map((pool) => {
        const bot = new Bot<Multi>("123:offline", { botInfo, client: { apiRoot: api.apiRoot } });
        const fragment = (prefix: string) =>
          new PostgresStorage({ client: pool, tableName, keyBuilder: prefixKeys(prefix) }) as never;
        bot.use(
          session({
            type: "multi",
            counter: { initial: () => ({ count: 0 }), storage: fragment("counter") },
            profile: { initial: () => ({ name: "anonymous" }), storage: fragment("profile") },
          }),
        );
        bot.command("count", (ctx) => {
          ctx.session.counter.count += 1;
        });
        bot.command("name", (ctx) => {
          ctx.session.profile.name = ctx.match;
        });
        return bot;
      });
      const [a, b] = bots as [Bot<Multi>, Bot<Multi>];
      // The sessions exist first: a first update has no base to tell initial() values from changes (see the README).
      await a.handleUpdate(textMessage(402, "/name n"));
      for (let n = 0; n < 20; n += 1) {
        await Promise.all([
          a.handleUpdate(textMessage(402, "/count")),
          b.handleUpdate(textMessage(402, `/name n${n}`)),
        ]);
      }
      const rows = await db.admin(`SELECT key, value::text AS value FROM "${tableName}" ORDER BY key`);
      expect(rows).toStrictEqual([
        { key: "counter:402", value: '{"count":20}' },
        { key: "profile:402", value: '{"name":"n19"}' },
      ]);
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });
});
