import { Bot, lazySession, session, type Context, type LazySessionFlavor, type SessionFlavor } from "grammy";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { countStatements } from "../dev/counting.js";
import { startFakeBotApi, type FakeBotApi } from "../dev/fake-bot-api.js";
import { botInfo, textMessage } from "../dev/telegram.js";
import {
  PostgresStorage,
  StorageValidationError,
  encryptedCodec,
  type PostgresStorageOptions,
  type StorageEvent,
} from "../src/index.js";
import { rewindExpiries, sleep, useFixture, useIsolates } from "./support/fixture.js";

describe("write-backs: applied as the change from what was read; an acknowledged write is in the database", () => {
  const db = useFixture(8);
  /** A pool of its own, as a separate isolate has. */
  const isolate = useIsolates();
  const counted = () => countStatements(db.pool);
  /** Statements that write: upserts, compare-and-sets and renewals. */
  const writes = (statements: string[]) => statements.filter((text) => !text.startsWith("SELECT")).length;
  /** A table that already exists, so that no first-write retry shows up in the counts. */
  const table = async (label: string) => {
    const name = db.table(label);
    await new PostgresStorage({ client: db.pool, tableName: name }).createTable();
    return name;
  };
  /** Two isolates' storages of one new table: `a` on this file's pool (with `options`), `b` on a pool of its own. */
  const twoIsolates = async (label: string, options: Partial<PostgresStorageOptions<Record<string, number>>> = {}) => {
    const name = await table(label);
    const a = new PostgresStorage<Record<string, number>>({ client: db.pool, tableName: name, ...options });
    const b = new PostgresStorage<Record<string, number>>({ client: isolate(), tableName: name });
    return { name, a, b };
  };
  const stored = async (name: string, key = "k") =>
    (await db.admin(`SELECT value::text AS value FROM "${name}" WHERE key = $1`, [key]))[0]?.value;

  it("sends nothing for a write-back of exactly what was read; one checked statement for a changed one; writes anything else", async () => {
    const c = counted();
    const store = new PostgresStorage<{ step: string; list: number[] }>({
      client: c.client,
      tableName: await table("skip_basic"),
    });
    await store.write("k", { step: "a", list: [1] });
    const value = (await store.read("k")) as { step: string; list: number[] };
    await store.write("k", value);
    expect(writes(c.statements)).toBe(1);
    // However often, and however long after the read: the change is empty.
    await store.write("k", value);
    expect(writes(c.statements)).toBe(1);
    value.list.push(2);
    await store.write("k", value);
    expect(writes(c.statements)).toBe(2);
    expect(c.statements.at(-1)).toMatch(/^(WITH changed AS \()?UPDATE .* WHERE key = \$1 AND value::text = \$3/);
    // The same object again: it builds on what it wrote, so unchanged it sends nothing.
    await store.write("k", value);
    expect(writes(c.statements)).toBe(2);
    // A write of an object no read returned, with no read of the key open: a plain write.
    await store.write("k", { step: "a", list: [1, 2] });
    expect(writes(c.statements)).toBe(3);
    expect(c.statements.at(-1)).toMatch(/^INSERT/);
    expect(await store.read("k")).toStrictEqual({ step: "a", list: [1, 2] });
  });

  it("a replaced session object, and grammY's initial() after a read found nothing, build on the key's last read", async () => {
    const name = await table("fallback");
    const c = counted();
    const a = new PostgresStorage<{ n: number; x?: number }>({ client: c.client, tableName: name });
    const b = new PostgresStorage<{ n: number; x?: number }>({ client: isolate(), tableName: name });
    // No row: the handler's initial() value is written only if still no row, else merged onto it.
    expect(await a.read("k")).toBeUndefined();
    await b.write("k", { n: 0, x: 7 });
    await a.write("k", { n: 1 });
    expect(await stored(name)).toBe('{"n":1,"x":7}');
    // A replaced object equal to what was read: nothing to apply.
    await a.read("k");
    const before = writes(c.statements);
    await a.write("k", { n: 1, x: 7 });
    expect(writes(c.statements)).toBe(before);
  });

  describe("isolates with storages of their own over pools of their own", () => {
    it("A writes X, B writes Y, A writes X again: the row holds X", async () => {
      const name = await table("iso_overwrite");
      const a = new PostgresStorage<string>({ client: isolate(), tableName: name });
      const b = new PostgresStorage<string>({ client: isolate(), tableName: name });
      await a.write("k", "X");
      await b.write("k", "Y");
      await a.write("k", "X");
      expect(await stored(name)).toBe('"X"');
      expect(await b.read("k")).toBe("X");
    });

    it("A writes X, B deletes the key, A writes X again: the row is there", async () => {
      const name = await table("iso_deleted");
      const a = new PostgresStorage<string>({ client: isolate(), tableName: name });
      const b = new PostgresStorage<string>({ client: isolate(), tableName: name });
      await a.write("k", "X");
      await b.delete("k");
      await a.write("k", "X");
      expect(await b.read("k")).toBe("X");
    });

    it("A writes X, the table is truncated, A writes X again: the row is there", async () => {
      const name = await table("iso_truncated");
      const a = new PostgresStorage<string>({ client: isolate(), tableName: name });
      await a.write("k", "X");
      await db.admin(`TRUNCATE "${name}"`);
      await a.write("k", "X");
      expect(await stored(name)).toBe('"X"');
    });

    it("the same through two storages over one pool", async () => {
      const name = await table("iso_one_pool");
      const a = new PostgresStorage<string>({ client: db.pool, tableName: name });
      const b = new PostgresStorage<string>({ client: db.pool, tableName: name });
      await a.write("k", "X");
      await b.write("k", "Y");
      await a.write("k", "X");
      expect(await stored(name)).toBe('"X"');
      await b.delete("k");
      await a.write("k", "X");
      expect(await stored(name)).toBe('"X"');
    });

    it("A reads X, B writes Y, A writes back X unchanged: nothing to apply, so B's newer value is kept", async () => {
      const name = await table("iso_write_back");
      const a = new PostgresStorage<{ v: number }>({ client: isolate(), tableName: name });
      const b = new PostgresStorage<{ v: number }>({ client: isolate(), tableName: name });
      await a.write("k", { v: 1 });
      const read = await a.read("k");
      await b.write("k", { v: 2 });
      await a.write("k", read as { v: number }); // grammY's write-back of an untouched session
      expect(await b.read("k")).toStrictEqual({ v: 2 });
    });
  });

  describe("grammY bots in separate isolates", () => {
    let api: FakeBotApi;
    beforeAll(async () => {
      api = await startFakeBotApi();
    });
    afterAll(() => api.stop());

    interface Counter {
      count: number;
    }
    interface Subscription {
      subscribed: boolean;
    }

    /** A lazySession bot: /reset and /subscribe, /unsubscribe assign the session without reading it; /count changes it. */
    function isolatedBot(tableName: string) {
      const bot = new Bot<Context & LazySessionFlavor<Counter & Subscription>>("123:offline", {
        botInfo,
        client: { apiRoot: api.apiRoot },
      });
      const storage = new PostgresStorage<Counter & Subscription>({ client: isolate(), tableName });
      bot.use(lazySession({ initial: () => ({ count: 0, subscribed: false }), storage }));
      bot.command("reset", (ctx) => {
        ctx.session = { count: 0, subscribed: false };
      });
      bot.command("subscribe", (ctx) => {
        ctx.session = { count: 0, subscribed: true };
      });
      bot.command("unsubscribe", (ctx) => {
        ctx.session = { count: 0, subscribed: false };
      });
      bot.command("count", async (ctx) => {
        (await ctx.session).count += 1;
      });
      return { bot, storage };
    }

    it("bot A resets, bot B counts, bot A resets again: the reset is stored", async () => {
      const name = await table("bots_reset");
      const a = isolatedBot(name);
      const b = isolatedBot(name);
      await a.bot.handleUpdate(textMessage(201, "/reset"));
      await b.bot.handleUpdate(textMessage(201, "/count"));
      expect(await b.storage.read("201")).toStrictEqual({ count: 1, subscribed: false });
      await a.bot.handleUpdate(textMessage(201, "/reset"));
      expect(await b.storage.read("201")).toStrictEqual({ count: 0, subscribed: false });
    });

    it("subscribe in A, unsubscribe in B, subscribe in A: subscribed", async () => {
      const name = await table("bots_toggle");
      const a = isolatedBot(name);
      const b = isolatedBot(name);
      await a.bot.handleUpdate(textMessage(202, "/subscribe"));
      await b.bot.handleUpdate(textMessage(202, "/unsubscribe"));
      await a.bot.handleUpdate(textMessage(202, "/subscribe"));
      expect(await b.storage.read("202")).toStrictEqual({ count: 0, subscribed: true });
    });

    it("a read-only update still costs one statement", async () => {
      const name = await table("bots_read_only");
      const c = counted();
      const storage = new PostgresStorage<Counter>({ client: c.client, tableName: name });
      const bot = new Bot<Context & SessionFlavor<Counter>>("123:offline", {
        botInfo,
        client: { apiRoot: api.apiRoot },
      });
      bot.use(session({ initial: () => ({ count: 0 }), storage }));
      bot.command("peek", (ctx) => ctx.reply(`count is ${ctx.session.count}`));
      await storage.write("203", { count: 3 });
      const before = c.statements.length;
      await bot.handleUpdate(textMessage(203, "/peek"));
      expect(c.statements.length - before).toBe(1);
    });
  });

  describe("what a write-back builds on, whatever this storage did to the key in between", () => {
    /** Storage A over the suite's pool and storage B in an isolate of its own, on one table. */
    const pair = async <T>(
      label: string,
      options: Partial<ConstructorParameters<typeof PostgresStorage<T>>[0]> = {},
    ) => {
      const name = await table(label);
      const a = new PostgresStorage<T>({ client: db.pool, tableName: name, ...options });
      const b = new PostgresStorage<T>({ client: isolate(), tableName: name });
      return { name, a, b };
    };

    it("A reads X, A updates, A writes X back unchanged: the update stays; B writes, A writes X back: B's value stays", async () => {
      const { name, a, b } = await pair<{ v: number }>("arm_update");
      await a.write("k", { v: 1 });
      const read = (await a.read("k")) as { v: number };
      await a.update("k", { v: 3 });
      await a.write("k", read);
      expect(await stored(name)).toBe('{"v":3}');
      await b.write("k", { v: 2 });
      await a.write("k", read);
      expect(await stored(name)).toBe('{"v":2}');
    });

    it("A reads X, A deletes the key, A writes X back unchanged: it stays deleted; changed: it is stored", async () => {
      const { name, a } = await pair<{ v: number }>("arm_delete");
      await a.write("k", { v: 1 });
      const read = (await a.read("k")) as { v: number };
      await a.delete("k");
      await a.write("k", read);
      expect(await stored(name)).toBeUndefined();
      const again = (await a.read("k")) ?? { v: 1 };
      await a.write("k", { v: 1 });
      expect(await stored(name)).toBe('{"v":1}');
      const changed = (await a.read("k")) as { v: number };
      await a.delete("k");
      changed.v = 5;
      await a.write("k", changed);
      expect(await stored(name)).toBe('{"v":5}');
      expect(again).toStrictEqual({ v: 1 });
    });

    it("update(key, {}) is no read: a write of what it answered is a plain write", async () => {
      const { name, a, b } = await pair<{ v: number }>("arm_empty_update");
      await a.write("k", { v: 1 });
      const current = await a.update("k", {});
      await b.write("k", { v: 2 });
      await a.write("k", current);
      expect(await stored(name)).toBe('{"v":1}');
    });

    it("a read that fails to decode opens nothing: the next write is a plain write", async () => {
      const { name, a, b } = await pair<{ v: number }>("arm_failed_decode", {
        schema: z.object({ v: z.number() }),
        validateOnWrite: false,
      });
      await db.admin(`INSERT INTO "${name}" (key, value) VALUES ('k', '{"v":"x"}')`);
      await expect(a.read("k")).rejects.toBeInstanceOf(StorageValidationError);
      await b.write("k", { v: 2 });
      await a.write("k", { v: "x" } as unknown as { v: number });
      expect(await stored(name)).toBe('{"v":"x"}');
    });

    it("a write refused before it is sent leaves the read's object as it was: written back unchanged, nothing is sent", async () => {
      const { name, a, b } = await pair<{ v: number | bigint }>("arm_refused_write");
      await a.write("k", { v: 1 });
      const read = (await a.read("k")) as { v: number };
      await expect(a.write("k", { v: 10n })).rejects.toThrow(/BigInt/);
      await b.write("k", { v: 2 });
      await a.write("k", read);
      expect(await stored(name)).toBe('{"v":2}');
    });

    it("a storage with a TTL renews a row that has no expiry, to give it one, in one statement", async () => {
      const name = await table("arm_ttl_none");
      await new PostgresStorage<number>({ client: db.pool, tableName: name }).write("k", 1);
      const c = counted();
      const store = new PostgresStorage<number>({ client: c.client, tableName: name, millisecondsToLive: 60_000 });
      await store.write("k", (await store.read("k")) as number);
      expect(writes(c.statements)).toBe(1);
      expect((await db.admin(`SELECT expires_at FROM "${name}"`))[0]?.expires_at).toBeInstanceOf(Date);
    });

    it("an unchanged object sends nothing however long its handler took; another object falls back to its key's read for 60 s", async () => {
      const name = await table("arm_window");
      const c = counted();
      const store = new PostgresStorage<{ v: number }>({ client: c.client, tableName: name });
      await store.write("k", { v: 1 });
      vi.useFakeTimers({ toFake: ["performance"] });
      try {
        const read = (await store.read("k")) as { v: number };
        vi.advanceTimersByTime(600_000);
        await store.write("k", read);
        expect(writes(c.statements)).toBe(1);
        await store.read("k");
        vi.advanceTimersByTime(59_000);
        await store.write("k", { v: 1 });
        expect(writes(c.statements)).toBe(1);
        await store.read("k");
        vi.advanceTimersByTime(60_000);
        await store.write("k", { v: 1 });
        expect(writes(c.statements)).toBe(2);
      } finally {
        vi.useRealTimers();
      }
    });
  });

  it("what a lone write or write-back left is in the database, whatever overlapped before it (randomized, in one process)", async () => {
    // A pool of 4 and 8 keys: reads with their write-backs, plain writes and deletes of one key overlap
    // constantly, in this storage and in another on the same pool. Every so often a key is left alone,
    // written (or read, changed and written back), and checked.
    const name = await table("skip_random");
    // Answers are held back a random moment after the statement committed, as a network does:
    // answers then often arrive in another order than the commits.
    const jittery = {
      query: async (text: string, params: unknown[]) => {
        const result = await db.pool.query(text, params);
        await sleep(Math.random() < 0.5 ? 0 : Math.random() * 3);
        return result;
      },
    };
    type V = { v: number };
    const store = new PostgresStorage<V>({ client: jittery, tableName: name });
    const other = new PostgresStorage<V>({ client: jittery, tableName: name });
    const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
    const busy = new Map<string, number>();
    const checking = new Set<string>();
    const checks = process.env.DATABASE_URL ? 2000 : 500;
    let checked = 0;
    const violations: string[] = [];
    const pick = <T>(items: readonly T[]) => items[Math.floor(Math.random() * items.length)] as T;
    const value = () => Math.floor(Math.random() * 3); // few values: the same text comes round often

    const run = async (key: string, operation: () => Promise<unknown>) => {
      busy.set(key, (busy.get(key) ?? 0) + 1);
      try {
        await operation();
      } finally {
        busy.set(key, (busy.get(key) ?? 1) - 1);
      }
    };
    /** grammY's pattern: read, a handler that may change the session, write-back. */
    const handle = async (storage: PostgresStorage<V>, key: string) => {
      const session = (await storage.read(key)) ?? { v: value() };
      await sleep(Math.random() * 2);
      if (Math.random() < 0.5) session.v = value();
      await storage.write(key, session);
    };
    const check = async (key: string) => {
      const roll = Math.random();
      const before = await stored(name, key);
      if (roll < 0.4) {
        const v = value();
        await (Math.random() < 0.5 ? store : other).write(key, { v });
        const found = await stored(name, key);
        if (found !== JSON.stringify({ v })) violations.push(`${key}: wrote ${v}, the database holds ${found}`);
        return;
      }
      const session = await store.read(key);
      const expected = session === undefined || roll < 0.7 ? { v: value() } : session;
      if (session !== undefined && expected !== session) session.v = expected.v;
      await store.write(key, session ?? expected);
      const found = await stored(name, key);
      if (found !== JSON.stringify(expected)) {
        violations.push(`${key}: held ${before}, wrote back ${JSON.stringify(expected)}, the database holds ${found}`);
      }
    };
    const worker = async () => {
      while (checked < checks) {
        const key = pick(keys);
        if (checking.has(key)) {
          await sleep(0);
          continue;
        }
        if ((busy.get(key) ?? 0) === 0 && Math.random() < 0.3) {
          checking.add(key);
          await check(key);
          checked += 1;
          checking.delete(key);
          continue;
        }
        const roll = Math.random();
        await run(key, () =>
          roll < 0.5
            ? handle(pick([store, other]), key)
            : roll < 0.85
              ? pick([store, other]).write(key, { v: value() })
              : pick([store, other]).delete(key),
        );
      }
    };
    await Promise.all(Array.from({ length: 12 }, worker));
    expect(violations).toStrictEqual([]);
    expect(checked).toBeGreaterThanOrEqual(checks);
  });

  it("after a failed write, knows nothing and writes again", async () => {
    const store = new PostgresStorage<number>({ client: db.pool, tableName: await table("skip_failed") });
    await store.write("k", 1);
    let fail = true;
    const flaky = {
      query: (text: string, params: unknown[]) =>
        !text.startsWith("SELECT") && fail
          ? Promise.reject(Object.assign(new Error("lost"), { code: "08006" }))
          : db.pool.query(text, params),
    };
    const c = countStatements(flaky);
    // Retrying off: this is about what the storage remembers after a failure, not about retries.
    const twin = new PostgresStorage<number>({ client: c.client, tableName: store.tableName, retry: false });
    await twin.read("k");
    await expect(twin.write("k", 2)).rejects.toThrow(/lost/);
    fail = false;
    await twin.write("k", 1); // no read open since the failed write-back: a plain write
    expect(writes(c.statements)).toBe(2);
  });

  it("after a read finds the row gone (deleted elsewhere), writes the value it knew again", async () => {
    const name = await table("skip_deleted_elsewhere");
    const c = counted();
    const store = new PostgresStorage<{ v: number }>({ client: c.client, tableName: name });
    await store.write("k", { v: 1 });
    await db.admin(`DELETE FROM "${name}" WHERE key = 'k'`);
    expect(await store.read("k")).toBeUndefined();
    await store.write("k", { v: 1 });
    expect(writes(c.statements)).toBe(2);
    expect(await store.has("k")).toBe(true);
  });

  it("does not let an older read, answered late, arm a skip of what it saw", async () => {
    const name = await table("skip_late_read");
    let holdNextRead = false;
    let release: () => void = () => {};
    // A client whose next read is answered only when released: the answer is old by then.
    const slow = {
      query: async (text: string, params: unknown[]) => {
        const hold = holdNextRead && text.startsWith("SELECT value");
        holdNextRead = false;
        const result = await db.pool.query(text, params);
        if (hold) await new Promise<void>((resolve) => (release = resolve));
        return result;
      },
    };
    const store = new PostgresStorage<{ v: string }>({ client: slow, tableName: name });
    await store.write("k", { v: "X" });
    holdNextRead = true;
    const older = store.read("k"); // sees X, answers late
    await sleep(50);
    await db.admin(`UPDATE "${name}" SET value = '{"v":"Y"}' WHERE key = 'k'`); // another process
    expect(await store.read("k")).toStrictEqual({ v: "Y" });
    release();
    expect(await older).toStrictEqual({ v: "X" });
    await store.write("k", { v: "X" }); // the database holds Y: this must be written
    expect(await stored(name)).toBe('{"v":"X"}');
  });

  it("with millisecondsToLive, renews an unchanged row once half its time has passed", async () => {
    const name = await table("skip_ttl");
    const c = counted();
    const store = new PostgresStorage<number>({ client: c.client, tableName: name, millisecondsToLive: 1_000 });
    const expiry = async () => ((await db.admin(`SELECT expires_at FROM "${name}"`))[0]?.expires_at as Date).getTime();
    await store.write("k", 1);
    await store.read("k");
    await store.write("k", 1);
    expect(writes(c.statements)).toBe(1);
    await rewindExpiries(db.admin, name, 600); // 600 of its 1000 ms have passed
    const before = await expiry();
    await store.read("k");
    await store.write("k", 1);
    expect(writes(c.statements)).toBe(2);
    expect((await expiry()) - before).toBeGreaterThanOrEqual(500);
  });

  it("statements of a write-back: an update() of this storage is merged onto at once; a change already made costs no write", async () => {
    const name = await table("wb_statements");
    const c = counted();
    const events: StorageEvent[] = [];
    const store = new PostgresStorage<Record<string, number>>({
      client: c.client,
      tableName: name,
      onEvent: (event) => events.push(event),
    });
    const other = new PostgresStorage<Record<string, number>>({ client: isolate(), tableName: name });
    await store.write("k", { a: 1 });
    // An update() in the handler: the write-back merges onto what it left, in one statement.
    const session = (await store.read("k")) as Record<string, number>;
    await store.update("k", { b: 2 });
    session.a = 3;
    let before = c.statements.length;
    await store.write("k", session);
    expect(c.statements.length - before).toBe(1);
    expect(await stored(name)).toBe('{"a":3,"b":2}');
    // Another writer already made the same change: after the failed set and the read, nothing is left to write.
    const again = (await store.read("k")) as Record<string, number>;
    await other.write("k", { a: 4, b: 5 });
    again.a = 4;
    before = c.statements.length;
    await store.write("k", again);
    expect(c.statements.slice(before).map((text) => /^(?:WITH \w+ AS \()?(\w+)/.exec(text)?.[1])).toStrictEqual([
      "UPDATE",
      "SELECT",
    ]);
    const writes = events.filter((event) => event.kind === "operation" && event.operation === "write");
    expect(writes.map((event) => (event.kind === "operation" ? event.write : undefined))).toStrictEqual([
      "replaced",
      "merged",
      "kept theirs",
    ]);
  });

  it("after a renewal, the same session written back unchanged again sends nothing", async () => {
    const name = await table("wb_renewed");
    const c = counted();
    const events: StorageEvent[] = [];
    const store = new PostgresStorage<{ v: number }>({
      client: c.client,
      tableName: name,
      millisecondsToLive: 60_000,
      onEvent: (event) => events.push(event),
    });
    await store.write("k", { v: 1 });
    await rewindExpiries(db.admin, name, 40_000); // 20 s of 60 left: renewal due
    const session = (await store.read("k")) as { v: number };
    await store.write("k", session);
    const before = c.statements.length;
    await store.write("k", session);
    expect(c.statements.length).toBe(before);
    expect(events.flatMap((event) => (event.kind === "operation" && event.write ? [event.write] : []))).toStrictEqual([
      "replaced",
      "renewed",
      "unchanged",
    ]);
  });

  it("the same object written twice after a merge keeps what the other writer changed", async () => {
    const { name, a, b } = await twoIsolates("wb_twice_after_merge");
    await a.write("k", { a: 0, b: 0 });
    const session = (await a.read("k")) as Record<string, number>;
    await b.update("k", { b: 1 });
    session.a = 1;
    await a.write("k", session); // merged: { a: 1, b: 1 }
    session.a = 2;
    await a.write("k", session);
    expect(await stored(name)).toBe('{"a":2,"b":1}');
  });

  it("after a read of an existing row, an update() then a write of a new object replaces the row, as after a write()", async () => {
    const name = await table("wb_update_then_new_object");
    const storage = new PostgresStorage<Record<string, unknown>>({ client: db.pool, tableName: name });
    await storage.write("k", { step: "a" });
    await storage.read("k");
    await storage.update("k", { step: "b", tmp: true });
    await storage.write("k", { step: "a" });
    expect(await stored(name)).toBe('{"step":"a"}');
  });

  it("the same object written twice after a write-back that kept the other writer's row keeps that row's changes", async () => {
    const { name, a, b } = await twoIsolates("wb_twice_after_kept");
    await a.write("k", { a: 1, b: 1 });
    const session = (await a.read("k")) as Record<string, number>;
    await b.update("k", { a: 2, b: 5 });
    session.a = 2;
    await a.write("k", session); // kept theirs: the row already holds a = 2
    expect(await stored(name)).toBe('{"a":2,"b":5}');
    session.c = 3;
    await a.write("k", session);
    expect(await stored(name)).toBe('{"a":2,"b":5,"c":3}');
  });

  it.each([
    ["without a TTL, sends nothing", undefined, "unchanged", 0],
    ["with a TTL, renews the row, whose expiry the other writer set", 60_000, "renewed", 1],
  ] as const)(
    "the same object written again unchanged after a write-back that kept the other writer's row %s",
    async (_, millisecondsToLive, write, statements) => {
      const name = await table("wb_kept_then_unchanged");
      const events: StorageEvent[] = [];
      const a = new PostgresStorage<Record<string, number>>({
        client: db.pool,
        tableName: name,
        millisecondsToLive,
        onEvent: (event) => events.push(event),
      });
      const b = new PostgresStorage<Record<string, number>>({ client: isolate(), tableName: name, millisecondsToLive });
      await a.write("k", { a: 1 });
      const session = (await a.read("k")) as Record<string, number>;
      await b.update("k", { a: 2 });
      session.a = 2;
      await a.write("k", session); // kept theirs
      await a.write("k", session);
      expect(events.at(-1)).toMatchObject({ operation: "write", write, statements });
      expect(await stored(name)).toBe('{"a":2}');
    },
  );

  it("the same object written again unchanged after a write-back that kept the row deleted leaves it deleted", async () => {
    const name = await table("wb_twice_after_kept_deleted");
    const events: StorageEvent[] = [];
    const onEvent = (event: StorageEvent) => events.push(event);
    const options = { tableName: name, onConflict: "theirs", millisecondsToLive: 60_000, onEvent } as const;
    const a = new PostgresStorage<Record<string, number>>({ client: db.pool, ...options });
    const b = new PostgresStorage<Record<string, number>>({ client: isolate(), tableName: name });
    await a.write("k", { a: 1 });
    const session = (await a.read("k")) as Record<string, number>;
    await b.delete("k");
    session.a = 2;
    await a.write("k", session); // theirs: the row stays deleted
    await a.write("k", session); // unchanged since: nothing to apply
    expect(events.at(-1)).toMatchObject({ operation: "write", write: "unchanged", statements: 0 });
    expect(await stored(name)).toBeUndefined();
  });

  it("after a write-back that kept the row deleted, the same object changed is merged onto a row re-created meanwhile", async () => {
    const { name, a, b } = await twoIsolates("wb_kept_deleted_recreated", { onConflict: "theirs" });
    await a.write("k", { a: 1 });
    const session = (await a.read("k")) as Record<string, number>;
    await b.delete("k");
    session.a = 2;
    await a.write("k", session); // theirs: the row stays deleted
    await b.write("k", { a: 1, z: 9 }); // another isolate creates it again
    session.c = 3;
    await a.write("k", session);
    expect(await stored(name)).toBe('{"a":1,"c":3,"z":9}');
  });

  it("merges against the session as the schema read it: a default the handler never touched is no change of its", async () => {
    const name = await table("wb_schema_base");
    const Session = z.object({ step: z.string(), lang: z.string().default("en") });
    const [a, b] = [db.pool, isolate()].map(
      (client) => new PostgresStorage({ client, tableName: name, schema: Session, onConflict: "throw" }),
    ) as [PostgresStorage<z.infer<typeof Session>>, PostgresStorage<z.infer<typeof Session>>];
    await db.admin(`INSERT INTO "${name}" (key, value) VALUES ('k', '{"step":"idle"}')`);
    const seenByA = (await a.read("k")) as z.infer<typeof Session>;
    const seenByB = (await b.read("k")) as z.infer<typeof Session>;
    seenByB.lang = "de";
    await b.write("k", seenByB);
    seenByA.step = "name";
    await a.write("k", seenByA); // no conflict: only B changed lang
    expect(JSON.parse(String(await stored(name)))).toStrictEqual({ step: "name", lang: "de" });
  });

  it("a guess of the row is checked before a write-back concludes there is nothing to apply", async () => {
    const name = await table("wb_checked_guess");
    const store = new PostgresStorage<{ open: boolean }>({ client: db.pool, tableName: name });
    await store.write("k", { open: false });
    const first = (await store.read("k")) as { open: boolean };
    const second = (await store.read("k")) as { open: boolean };
    first.open = true;
    await store.write("k", first);
    await db.admin(`UPDATE "${name}" SET value = '{"open":false}'`); // another isolate closes it
    second.open = true;
    await store.write("k", second); // its own change, open: true, is applied
    expect(await stored(name)).toBe('{"open":true}');
  });

  it("renews a row that expired while its handler ran, unchanged, as long as it is still there", async () => {
    const name = await table("wb_renew_expired");
    const store = new PostgresStorage<{ v: number }>({ client: db.pool, tableName: name, millisecondsToLive: 1_000 });
    await store.write("k", { v: 1 });
    await rewindExpiries(db.admin, name, 600); // 400 ms left when read: renewal due
    const session = (await store.read("k")) as { v: number };
    await rewindExpiries(db.admin, name, 1_000); // and expired while the handler ran
    await store.write("k", session);
    expect(await store.read("k")).toStrictEqual({ v: 1 });
  });

  it("judges a row's remaining life when the write-back is decided, after a slow schema, not when it started", async () => {
    const name = await table("skip_ttl_slow");
    const c = counted();
    const slow = {
      "~standard": {
        validate: async (value: unknown) => {
          await sleep(150);
          return { value: value as number };
        },
      },
    };
    const store = new PostgresStorage<number>({
      client: c.client,
      tableName: name,
      millisecondsToLive: 1_000,
      schema: slow,
    });
    await store.write("k", 1);
    await rewindExpiries(db.admin, name, 450); // 550 ms left: renewal due in 50 ms
    const read = (await store.read("k")) as number;
    const before = writes(c.statements);
    await store.write("k", read); // 150 ms of schema: by then the row needs renewing
    expect(writes(c.statements)).toBe(before + 1);
    const [row] = await db.admin(`SELECT extract(epoch FROM expires_at - now()) * 1000 AS ms FROM "${name}"`);
    expect(Number(row?.ms)).toBeGreaterThan(800); // renewed to a full second
    expect(await store.read("k")).toBe(1);
  });

  it("writes an unchanged value that has an expiry when this storage has none (clearing it)", async () => {
    const name = db.table("skip_clear_ttl");
    await new PostgresStorage<number>({ client: db.pool, tableName: name, millisecondsToLive: 60_000 }).write("k", 1);
    const c = counted();
    const store = new PostgresStorage<number>({ client: c.client, tableName: name });
    await store.write("k", (await store.read("k")) as number);
    expect(writes(c.statements)).toBe(1);
    expect(await db.admin(`SELECT expires_at FROM "${name}"`)).toStrictEqual([{ expires_at: null }]);
  });

  it("remembers a bounded number of keys: the oldest are forgotten and written again", async () => {
    const name = await table("skip_bounded");
    const c = counted();
    const store = new PostgresStorage<number>({ client: c.client, tableName: name });
    await db.admin(`INSERT INTO "${name}" (key, value) SELECT 'k' || i, '0' FROM generate_series(0, 1499) AS i`);
    for (let i = 0; i < 1500; i += 1) await store.read(`k${i}`);
    await store.write("k1499", 0); // recent: skipped
    await store.write("k0", 0); // evicted long ago: written
    expect(writes(c.statements)).toBe(1);
  });

  it("with the encrypting codec too, an unchanged write-back sends nothing: sessions are compared before encryption", async () => {
    const c = counted();
    const store = new PostgresStorage<{ v: number }>({
      client: c.client,
      tableName: await table("skip_encrypted"),
      codec: encryptedCodec({ secret: "s".repeat(32) }),
    });
    await store.write("k", { v: 1 });
    const read = (await store.read("k")) as { v: number };
    await store.write("k", read);
    expect(writes(c.statements)).toBe(1);
    read.v = 2;
    await store.write("k", read);
    expect(writes(c.statements)).toBe(2);
    expect(await store.read("k")).toStrictEqual({ v: 2 });
  });
});
