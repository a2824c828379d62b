import { Bot, session, type Context, type SessionFlavor } from "grammy";
import { describe, expect, it } from "vitest";
import { countStatements, statementsPerUpdate } from "../dev/counting.js";
import { botInfo, textMessage } from "../dev/telegram.js";
import {
  PostgresStorage,
  StorageConflictError,
  type ConflictResolver,
  type OperationEvent,
  type PostgresStorageOptions,
  type StorageEvent,
} from "../src/index.js";
import { rewindExpiries, sleep, useFixture, useIsolates } from "./support/fixture.js";

type Session = Record<string, unknown>;

const TTL = 60_000;

// A write-back against a row with a TTL (millisecondsToLive): the row may expire while the handler runs, and the
// storage's own update() or a write-back's check renews it. Time passes on the database's clock: rewindExpiries()
// moves expires_at into the past instead of waiting, except where the storage's own quiet time (half the TTL after
// it renewed a row, on its own clock) has to run out.
describe("write-backs of sessions whose row expired or was renewed while the handler ran", () => {
  const db = useFixture(2);
  /** A pool of its own, as a separate isolate has. */
  const isolate = useIsolates();

  /** A storage on a pool of its own, and how each of its write() calls was applied. */
  const observed = (tableName: string, options: Partial<PostgresStorageOptions<Session>> = {}) => {
    const events: OperationEvent[] = [];
    const storage = new PostgresStorage<Session>({
      client: isolate(),
      tableName,
      millisecondsToLive: TTL,
      onEvent: (event: StorageEvent) => {
        if (event.kind === "operation") events.push(event);
      },
      ...options,
    });
    const lastWrite = () => {
      const write = events.filter((event) => event.operation === "write").at(-1);
      return write && { write: write.write, statements: write.statements, outcome: write.outcome };
    };
    return { storage, lastWrite };
  };
  /** The row's text as the database holds it, expired or not. */
  const stored = async (tableName: string, key = "chat") =>
    (await db.admin(`SELECT value::text AS value FROM "${tableName}" WHERE key = $1`, [key]))[0]?.value as
      | string
      | undefined;
  /** The session as a storage that never saw the key reads it: `undefined` when the row is expired or gone. */
  const fresh = (tableName: string, key = "chat") =>
    new PostgresStorage<Session>({ client: db.pool, tableName }).read(key);
  /** The row's expiry, and the milliseconds it has left on the database's clock. */
  const expiry = async (tableName: string, key = "chat") => {
    const [row] = (await db.admin(
      `SELECT expires_at, extract(epoch FROM expires_at - now()) * 1000 AS left FROM "${tableName}" WHERE key = $1`,
      [key],
    )) as [{ expires_at: Date; left: number | string }];
    return { at: row.expires_at.getTime(), msLeft: Number(row.left) };
  };
  const outcome = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (failure: unknown) => failure,
    );

  describe("a session the handler changed while its row expired, and no one else wrote or deleted the row", () => {
    /** Reads { step: "name" }, lets the row expire (prune() has not run), and writes back step = "age". */
    const expiredWhileHandling = async (label: string, options: Partial<PostgresStorageOptions<Session>>) => {
      const tableName = db.table(label);
      const { storage, lastWrite } = observed(tableName, options);
      await storage.write("chat", { step: "name" });
      const session = (await storage.read("chat")) as Session;
      await rewindExpiries(db.admin, tableName, TTL + 30_000); // expired 30 s ago
      expect(await fresh(tableName)).toBeUndefined();
      expect(await stored(tableName)).toBe('{"step":"name"}'); // expired, not deleted
      session.step = "age";
      const error = await outcome(storage.write("chat", session));
      return { tableName, error, write: lastWrite() };
    };

    it.each(["ours", "theirs", "throw"] as const)(
      'onConflict "%s": the change is stored in one statement, and the chat reads it for a full TTL again',
      async (onConflict) => {
        const { tableName, error, write } = await expiredWhileHandling(`exp_changed_${onConflict}`, { onConflict });
        expect(error).toBeUndefined();
        expect(write).toStrictEqual({ write: "set", statements: 1, outcome: "ok" });
        expect(await fresh(tableName)).toStrictEqual({ step: "age" });
        expect((await expiry(tableName)).msLeft).toBeGreaterThan(TTL - 10_000);
      },
    );

    it("an onConflict function is not asked about a conflict: no other writer exists", async () => {
      const asked: unknown[] = [];
      const onConflict: ConflictResolver<Session> = (base, ours, theirs, conflict) => {
        asked.push({ base, ours, theirs, conflict });
        return ours;
      };
      const { tableName, error, write } = await expiredWhileHandling("exp_changed_function", { onConflict });
      expect({ error, asked, write }).toStrictEqual({
        error: undefined,
        asked: [],
        write: { write: "set", statements: 1, outcome: "ok" },
      });
      expect(await fresh(tableName)).toStrictEqual({ step: "age" });
    });

    it('a grammY handler that runs past the TTL keeps the step it set, under onConflict "theirs", in read + one set', async () => {
      const tableName = db.table("exp_changed_bot");
      const counted = countStatements(isolate());
      const storage = new PostgresStorage<Session>({
        client: counted.client,
        tableName,
        millisecondsToLive: TTL,
        onConflict: "theirs",
      });
      await storage.write("701", { step: "name" });
      const bot = new Bot<Context & SessionFlavor<Session>>("123:offline", { botInfo });
      bot.use(session({ initial: () => ({ step: "start" }), storage }));
      const seen: unknown[] = [];
      bot.on("message", async (ctx) => {
        seen.push(ctx.session.step);
        if (ctx.message.text === "Ada") {
          await rewindExpiries(db.admin, tableName, TTL + 30_000); // the handler ran past the row's expiry
          ctx.session.step = "age";
        }
      });
      expect(await statementsPerUpdate(counted, bot, textMessage(701, "Ada"))).toBe(2);
      await bot.handleUpdate(textMessage(701, "36"));
      expect(seen).toStrictEqual(["name", "age"]);
      expect(await fresh(tableName, "701")).toStrictEqual({ step: "age" });
    });
  });

  describe("a session changed while its row expired, when another isolate deleted or rewrote the row meanwhile", () => {
    // docs/updates.md: a row deleted meanwhile counts as a conflict of the whole value (by default the session is
    // stored again; "theirs" leaves it deleted); a row another writer changed is merged field by field.
    type Other = (other: PostgresStorage<Session>, tableName: string) => Promise<unknown>;
    const afterOther = async (
      label: string,
      onConflict: PostgresStorageOptions<Session>["onConflict"],
      other: Other,
    ) => {
      const tableName = db.table(label);
      const { storage, lastWrite } = observed(tableName, { onConflict });
      const b = new PostgresStorage<Session>({ client: isolate(), tableName, millisecondsToLive: TTL });
      await storage.write("chat", { step: "name" });
      const session = (await storage.read("chat")) as Session;
      await rewindExpiries(db.admin, tableName, TTL + 30_000);
      await other(b, tableName);
      session.step = "age";
      const error = await outcome(storage.write("chat", session));
      return { error, write: lastWrite()?.write, row: await fresh(tableName) };
    };
    const deleters: [string, Other][] = [
      ["deleted it", (b) => b.delete("chat")],
      [
        "pruned it",
        async (b) => {
          expect(await b.prune()).toBe(1);
        },
      ],
    ];

    describe.each(deleters)("another isolate %s", (_, deleter) => {
      it('by default ("ours") the session is stored again', async () => {
        expect(await afterOther("exp_deleted_ours", "ours", deleter)).toStrictEqual({
          error: undefined,
          write: "merged",
          row: { step: "age" },
        });
      });

      it('"theirs": the chat stays without a session', async () => {
        expect(await afterOther("exp_deleted_theirs", "theirs", deleter)).toStrictEqual({
          error: undefined,
          write: "kept theirs",
          row: undefined,
        });
      });

      it('"throw": StorageConflictError of the whole value, and the chat stays without a session', async () => {
        const { error, row } = await afterOther("exp_deleted_throw", "throw", deleter);
        expect(error).toBeInstanceOf(StorageConflictError);
        expect((error as StorageConflictError).fields).toStrictEqual([""]);
        expect(row).toBeUndefined();
      });

      it("an onConflict function is asked, with no session as theirs", async () => {
        const asked: unknown[] = [];
        const { row } = await afterOther(
          "exp_deleted_function",
          (base, ours, theirs, { fields }) => {
            asked.push({ base, ours, theirs, fields });
            return { ...ours, restored: true };
          },
          deleter,
        );
        expect(asked).toStrictEqual([
          { base: { step: "name" }, ours: { step: "age" }, theirs: undefined, fields: [""] },
        ]);
        expect(row).toStrictEqual({ step: "age", restored: true });
      });
    });

    it.each(["ours", "theirs", "throw"] as const)(
      'another isolate stored a field of its own: merged under "%s"',
      async (onConflict) => {
        const result = await afterOther(`exp_rewritten_${onConflict}`, onConflict, (b) =>
          b.write("chat", { step: "name", lang: "de" }),
        );
        expect(result).toStrictEqual({ error: undefined, write: "merged", row: { step: "age", lang: "de" } });
      },
    );

    it.each([
      ["ours", { step: "age" }],
      ["theirs", { step: "menu" }],
    ] as const)('another isolate set the same field: "%s" decides it', async (onConflict, row) => {
      const result = await afterOther(`exp_conflict_${onConflict}`, onConflict, (b) =>
        b.write("chat", { step: "menu" }),
      );
      expect({ error: result.error, row: result.row }).toStrictEqual({ error: undefined, row });
    });

    it('another isolate set the same field: "throw" names it, and the chat keeps the other value', async () => {
      const { error, row } = await afterOther("exp_conflict_throw", "throw", (b) => b.write("chat", { step: "menu" }));
      expect(error).toBeInstanceOf(StorageConflictError);
      expect((error as StorageConflictError).fields).toStrictEqual(["step"]);
      expect(row).toStrictEqual({ step: "menu" });
    });
  });

  describe("an unchanged write-back after this storage's own update() or write() of the key", () => {
    /** Writes { step: "name" } and reads it when less than half its TTL is left: a renewal is due. */
    const readWhenRenewalDue = async (label: string) => {
      const tableName = db.table(label);
      const observing = observed(tableName);
      await observing.storage.write("chat", { step: "name" });
      await rewindExpiries(db.admin, tableName, TTL - 20_000); // 20 s of 60 left
      const session = (await observing.storage.read("chat")) as Session;
      return { tableName, ...observing, session };
    };

    it("after update() renewed the row: no statement, and the row keeps the update's value and expiry", async () => {
      const { tableName, storage, lastWrite, session } = await readWhenRenewalDue("exp_update_unchanged");
      await storage.update("chat", { plan: "pro" });
      const renewed = await expiry(tableName);
      expect(renewed.msLeft).toBeGreaterThan(TTL - 10_000);
      await storage.write("chat", session);
      expect(lastWrite()).toStrictEqual({ write: "unchanged", statements: 0, outcome: "ok" });
      expect(await stored(tableName)).toBe('{"step":"name","plan":"pro"}');
      expect((await expiry(tableName)).at).toBe(renewed.at);
    });

    it("after write() of a new value: no statement, and the row keeps that value and its expiry", async () => {
      const { tableName, storage, lastWrite, session } = await readWhenRenewalDue("exp_write_unchanged");
      await storage.write("chat", { step: "done" });
      const written = await expiry(tableName);
      await storage.write("chat", session);
      expect(lastWrite()).toStrictEqual({ write: "unchanged", statements: 0, outcome: "ok" });
      expect(await stored(tableName)).toBe('{"step":"done"}');
      expect((await expiry(tableName)).at).toBe(written.at);
    });

    it("a grammY handler that only reads ctx.session and calls update(): the read and the update, nothing more", async () => {
      const tableName = db.table("exp_update_bot");
      const counted = countStatements(isolate());
      const writes: unknown[] = [];
      const storage = new PostgresStorage<Session>({
        client: counted.client,
        tableName,
        millisecondsToLive: TTL,
        onEvent: (event) => {
          if (event.kind === "operation" && event.operation === "write") writes.push(event.write);
        },
      });
      await storage.write("702", { step: "name" });
      writes.length = 0;
      await rewindExpiries(db.admin, tableName, TTL - 20_000);
      const bot = new Bot<Context & SessionFlavor<Session>>("123:offline", { botInfo });
      bot.use(session({ initial: () => ({ step: "start" }), storage }));
      const seen: unknown[] = [];
      bot.on("message", async (ctx) => {
        seen.push(ctx.session.step);
        await storage.update(String(ctx.chat.id), { plan: "pro" });
      });
      expect(await statementsPerUpdate(counted, bot, textMessage(702, "/upgrade"))).toBe(2);
      expect(seen).toStrictEqual(["name"]);
      expect(writes).toStrictEqual(["unchanged"]);
      expect(await fresh(tableName, "702")).toStrictEqual({ step: "name", plan: "pro" });
      expect((await expiry(tableName, "702")).msLeft).toBeGreaterThan(TTL - 10_000);
    });

    it("without an update() in between, the row read past half its TTL is still renewed, in one statement", async () => {
      const { tableName, storage, lastWrite, session } = await readWhenRenewalDue("exp_plain_renewed");
      await storage.write("chat", session);
      expect(lastWrite()).toStrictEqual({ write: "renewed", statements: 1, outcome: "ok" });
      expect((await expiry(tableName)).msLeft).toBeGreaterThan(TTL - 10_000);
      expect(await fresh(tableName)).toStrictEqual({ step: "name" });
    });
  });

  describe("a write-back that kept the row as this storage's own update() left it", () => {
    /** Reads { a: 1 }, update()s a to 2, and writes back the session with a = 2 too: "kept theirs", checked once. */
    const keptOnGuess = async (label: string, millisecondsToLive: number) => {
      const tableName = db.table(label);
      const observing = observed(tableName, { millisecondsToLive });
      const { storage, lastWrite } = observing;
      await storage.write("chat", { a: 1 });
      const session = (await storage.read("chat")) as Session;
      await storage.update("chat", { a: 2 });
      session.a = 2;
      await storage.write("chat", session);
      expect(lastWrite()).toStrictEqual({ write: "kept theirs", statements: 1, outcome: "ok" });
      return { tableName, ...observing, session };
    };

    it("the same object written back unchanged again sends nothing: the check renewed the row", async () => {
      const { tableName, storage, lastWrite, session } = await keptOnGuess("exp_kept_unchanged", TTL);
      const checked = await expiry(tableName);
      expect(checked.msLeft).toBeGreaterThan(TTL - 10_000);
      await storage.write("chat", session);
      expect(lastWrite()).toStrictEqual({ write: "unchanged", statements: 0, outcome: "ok" });
      expect(await stored(tableName)).toBe('{"a":2}');
      expect((await expiry(tableName)).at).toBe(checked.at);
    });

    it("once half the TTL has passed since the check, the same object unchanged renews the row", async () => {
      const ttl = 1_000;
      const { tableName, storage, lastWrite, session } = await keptOnGuess("exp_kept_renewed", ttl);
      await sleep(ttl / 2 + 200);
      await storage.write("chat", session);
      expect(lastWrite()).toStrictEqual({ write: "renewed", statements: 1, outcome: "ok" });
      expect((await expiry(tableName)).msLeft).toBeGreaterThan(ttl / 2);
      expect(await fresh(tableName)).toStrictEqual({ a: 2 });
    });
  });
});

// A handler changes ctx.session in place and calls storage.update() of its chat (both acknowledged, nobody else writes
// the key), and the row then expires before grammY writes the session back: the write-back builds on the row the
// update() left, which the expiry does not make another writer's deletion.
describe("a grammY handler that changes ctx.session, calls update(), and then outlives the row's TTL", () => {
  const db = useFixture(2);
  /** A pool of its own, as a separate isolate has. */
  const isolate = useIsolates();

  /** The session as a storage that never saw the key reads it: `undefined` when the row is expired or gone. */
  const fresh = (tableName: string, key: string) =>
    new PostgresStorage<Session>({ client: db.pool, tableName }).read(key);
  /** The milliseconds the row has left on the database's clock. */
  const msLeft = async (tableName: string, key: string) =>
    Number(
      (
        await db.admin(
          `SELECT extract(epoch FROM expires_at - now()) * 1000 AS left FROM "${tableName}" WHERE key = $1`,
          [key],
        )
      )[0]?.left,
    );

  /** Chat 703 reads { step: "name" }; its handler sets step = "age", update()s plan = "pro", and runs past the TTL. */
  const updateThenExpiry = async (label: string, onConflict: PostgresStorageOptions<Session>["onConflict"]) => {
    const tableName = db.table(label);
    const writes: unknown[] = [];
    const storage = new PostgresStorage<Session>({
      client: isolate(),
      tableName,
      millisecondsToLive: TTL,
      onConflict,
      onEvent: (event: StorageEvent) => {
        if (event.kind === "operation" && event.operation === "write") writes.push(event.write ?? event.error);
      },
    });
    await storage.write("703", { step: "name" });
    writes.length = 0;
    const bot = new Bot<Context & SessionFlavor<Session>>("123:offline", { botInfo });
    bot.use(session({ initial: () => ({ step: "start" }), storage }));
    bot.on("message", async (ctx) => {
      ctx.session.step = "age";
      await storage.update(String(ctx.chat.id), { plan: "pro" });
      await rewindExpiries(db.admin, tableName, TTL + 30_000); // the handler ran past the row's expiry
    });
    // grammY wraps a failed write-back in a BotError: its error is the storage's.
    const error = await bot.handleUpdate(textMessage(703, "36")).then(
      () => undefined,
      (failure: { error?: unknown }) => failure.error ?? failure,
    );
    return { tableName, error, writes };
  };

  it.each(["ours", "theirs", "throw"] as const)(
    'onConflict "%s": the chat keeps both the step the handler set and the plan update() set, for a full TTL again',
    async (onConflict) => {
      const { tableName, error, writes } = await updateThenExpiry(`exp_update_expired_${onConflict}`, onConflict);
      expect({ error, writes }).toStrictEqual({ error: undefined, writes: ["merged"] });
      expect(await fresh(tableName, "703")).toStrictEqual({ step: "age", plan: "pro" });
      expect(await msLeft(tableName, "703")).toBeGreaterThan(TTL - 10_000);
    },
  );

  it("an onConflict function is not asked about a conflict: no other writer exists", async () => {
    const asked: unknown[] = [];
    const onConflict: ConflictResolver<Session> = (base, ours, theirs, conflict) => {
      asked.push({ base, ours, theirs, conflict });
      return ours;
    };
    const { tableName, error } = await updateThenExpiry("exp_update_expired_function", onConflict);
    expect({ error, asked }).toStrictEqual({ error: undefined, asked: [] });
    expect(await fresh(tableName, "703")).toStrictEqual({ step: "age", plan: "pro" });
  });
});
