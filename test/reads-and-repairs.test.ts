import { randomUUID } from "node:crypto";
import { Bot, BotError, session, type Context, type SessionFlavor } from "grammy";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { countStatements, statementsPerUpdate } from "../dev/counting.js";
import { botInfo, textMessage } from "../dev/telegram.js";
import {
  PostgresStorage,
  StorageConflictError,
  encryptedCodec,
  type OperationEvent,
  type StorageEvent,
  type WriteConflict,
} from "../src/index.js";
import { rewindExpiries, storedText, useFixture, useIsolates } from "./support/fixture.js";

type Session = Record<string, unknown>;

const TTL = 60_000;

/** A promise and the function that resolves it: where a handler waits, or tells the test it got there. */
const signal = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
};

// What a read hands out and what its write-back stores: a session onInvalid repaired (and merged with another
// isolate's write-back of its own repair), a string session too large to keep twice in memory, a session read under an
// older encryptedCodec secret by an older schema version, a row that expired while the handler ran and that a later
// update of the chat found missing, a new chat's update() read back by a second update, and the base an onConflict
// function is given.
describe("reads and their write-backs: repairs, re-encryption, expiry, update() and conflict bases", () => {
  const db = useFixture(2);
  /** A pool of its own, as a separate isolate has. */
  const isolate = useIsolates();
  const stored = (tableName: string, key: string) => storedText(db.admin, tableName, key);
  /** The operations an observed storage reports. */
  const operations = () => {
    const events: OperationEvent[] = [];
    const onEvent = (event: StorageEvent) => {
      if (event.kind === "operation") events.push(event);
    };
    /** How each write() was applied, in how many statements, and with what outcome. */
    const writes = () =>
      events
        .filter((event) => event.operation === "write")
        .map((event) => ({ write: event.write, statements: event.statements, outcome: event.outcome }));
    return { onEvent, writes };
  };

  describe("onInvalid repairs a session of an older shape", () => {
    // v1 stored { stage, userName }; v2 expects { step, name } (docs/typed-state.md).
    const V2 = z.object({ step: z.enum(["idle", "name"]), name: z.string().optional() });

    it("the repaired session is stored at the end of the first update that uses ctx.session, and later updates do not repair it again", async () => {
      const tableName = db.table("rr_repair");
      await new PostgresStorage<unknown>({ client: isolate(), tableName }).write("901", {
        stage: "name",
        userName: "Ada",
      });
      const repaired: unknown[] = [];
      const counted = countStatements(isolate());
      const storage = new PostgresStorage({
        client: counted.client,
        tableName,
        schema: V2,
        onInvalid: ({ value }) => {
          repaired.push(value);
          const old = value as { stage?: "idle" | "name"; userName?: string };
          return old.stage ? { step: old.stage, name: old.userName } : undefined;
        },
      });
      const bot = new Bot<Context & SessionFlavor<z.infer<typeof V2>>>("123:offline", { botInfo });
      bot.use(session({ initial: () => ({ step: "idle" as const }), storage }));
      const seen: unknown[] = [];
      bot.on("message", (ctx) => void seen.push(ctx.session.name)); // uses ctx.session, changes nothing
      // The read, and the write of the repair.
      expect(await statementsPerUpdate(counted, bot, textMessage(901, "hi"))).toBe(2);
      expect(await stored(tableName, "901")).toBe('{"step":"name","name":"Ada"}');
      // Later updates read the repaired row: the read alone, no repair.
      expect(await statementsPerUpdate(counted, bot, textMessage(901, "hi"))).toBe(1);
      expect(await statementsPerUpdate(counted, bot, textMessage(901, "hi"))).toBe(1);
      expect(repaired).toStrictEqual([{ stage: "name", userName: "Ada" }]);
      expect(seen).toStrictEqual(["Ada", "Ada", "Ada"]);
      expect(await stored(tableName, "901")).toBe('{"step":"name","name":"Ada"}');
    });

    // v1 stored { count }; v2 has an id the schema draws at random for a session without one.
    const WithId = z.object({
      v: z.literal(2),
      id: z.string().default(() => randomUUID()),
      n: z.number(),
      m: z.number().default(0),
    });
    const fromV1 = ({ value }: { value: unknown }) => ({ v: 2 as const, n: (value as { count?: number }).count ?? 0 });

    for (const onConflict of ["throw", "ours"] as const) {
      it(`onConflict "${onConflict}": two isolates repair the same row, each drawing its own random id; B changes m, then A changes n: no error, and the row keeps B's id with both changes`, async () => {
        const tableName = db.table("rr_repair_random");
        await new PostgresStorage<unknown>({ client: isolate(), tableName }).write("chat", { count: 1 });
        const options = { tableName, schema: WithId, onInvalid: fromV1, onConflict };
        const a = new PostgresStorage({ client: isolate(), ...options });
        const b = new PostgresStorage({ client: isolate(), ...options });
        const ours = (await a.read("chat")) as z.infer<typeof WithId>;
        const theirs = (await b.read("chat")) as z.infer<typeof WithId>;
        expect(ours.id).not.toBe(theirs.id); // each repair drew its own
        theirs.m = 7;
        await b.write("chat", theirs);
        ours.n = 5; // A's handler leaves the id alone
        await a.write("chat", ours);
        expect(JSON.parse((await stored(tableName, "chat")) as string)).toStrictEqual({
          v: 2,
          id: theirs.id,
          n: 5,
          m: 7,
        });
      });
    }
  });

  describe("a string session of 600,000 characters, which another isolate replaces while an update of the chat runs", () => {
    const SIZE = 600_000;

    /** A bot on a counted pool of its own whose session is a string; its handlers wait at `gate` once reached. */
    const stringBot = (tableName: string, onConflict: "ours" | "throw") => {
      const counted = countStatements(isolate());
      const storage = new PostgresStorage<string>({ client: counted.client, tableName, onConflict });
      const bot = new Bot<Context & SessionFlavor<string>>("123:offline", { botInfo });
      bot.use(session({ initial: () => "", storage }));
      const reached = signal();
      const gate = signal();
      bot.command("read", async (ctx) => {
        void ctx.session.length; // uses ctx.session, changes nothing
        reached.resolve();
        await gate.promise;
      });
      bot.command("change", async (ctx) => {
        ctx.session = `${ctx.session}!`;
        reached.resolve();
        await gate.promise;
      });
      return { counted, bot, reached, gate };
    };

    for (const onConflict of ["ours", "throw"] as const) {
      it(`onConflict "${onConflict}": an update that only reads it costs one statement and keeps the other isolate's value`, async () => {
        const tableName = db.table("rr_large_string");
        const other = new PostgresStorage<string>({ client: isolate(), tableName });
        await other.write("906", "x".repeat(SIZE));
        const { counted, bot, reached, gate } = stringBot(tableName, onConflict);
        const before = counted.statements.length;
        const one = bot.handleUpdate(textMessage(906, "/read"));
        await reached.promise;
        await other.write("906", "y".repeat(SIZE));
        gate.resolve();
        await one;
        expect(counted.statements.length - before).toBe(1);
        expect(await stored(tableName, "906")).toBe(JSON.stringify("y".repeat(SIZE)));
      });
    }

    it('onConflict "throw": an update that changes it fails with StorageConflictError, and the other isolate\'s value stays', async () => {
      const tableName = db.table("rr_large_string_changed");
      const other = new PostgresStorage<string>({ client: isolate(), tableName });
      await other.write("907", "x".repeat(SIZE));
      const { bot, reached, gate } = stringBot(tableName, "throw");
      const one = bot.handleUpdate(textMessage(907, "/change")).catch((failure: unknown) => failure);
      await reached.promise;
      await other.write("907", "y".repeat(SIZE));
      gate.resolve();
      const failure = await one;
      expect(failure).toBeInstanceOf(BotError);
      expect((failure as BotError).error).toBeInstanceOf(StorageConflictError);
      expect(await stored(tableName, "907")).toBe(JSON.stringify("y".repeat(SIZE)));
    });
  });

  describe("encryptedCodec({ secret: [NEW, OLD] }): an older version's bot, whose schema lacks plan, only reads ctx.session", () => {
    const OLD = "o".repeat(40);
    const NEW = "n".repeat(40);
    const Older = z.object({ step: z.string() });
    const Newer = z.object({ step: z.string(), plan: z.string().optional() });

    /** A bot of the older version on a counted pool of its own, reading ctx.session.step. */
    const olderBot = (tableName: string) => {
      const counted = countStatements(isolate());
      const observed = operations();
      const storage = new PostgresStorage({
        client: counted.client,
        tableName,
        schema: Older,
        codec: encryptedCodec({ secret: [NEW, OLD] }),
        onEvent: observed.onEvent,
      });
      const bot = new Bot<Context & SessionFlavor<z.infer<typeof Older>>>("123:offline", { botInfo });
      bot.use(session({ initial: () => ({ step: "idle" }), storage }));
      const seen: string[] = [];
      bot.on("message", (ctx) => void seen.push(ctx.session.step));
      return { counted, bot, seen, writes: observed.writes };
    };

    it("a row stored under OLD by the newer version is stored again under NEW, and keeps the newer version's plan", async () => {
      const tableName = db.table("rr_reseal_old");
      await new PostgresStorage({
        client: isolate(),
        tableName,
        schema: Newer,
        codec: encryptedCodec({ secret: OLD }),
      }).write("902", { step: "idle", plan: "pro" });
      const { counted, bot, seen, writes } = olderBot(tableName);
      expect(await statementsPerUpdate(counted, bot, textMessage(902, "hi"))).toBe(2);
      expect(seen).toStrictEqual(["idle"]);
      expect(writes()).toStrictEqual([{ write: "renewed", statements: 1, outcome: "ok" }]);
      // NEW alone decrypts it: the row was stored again under the current secret, with plan.
      const newerOnNew = new PostgresStorage({
        client: db.pool,
        tableName,
        schema: Newer,
        codec: encryptedCodec({ secret: NEW }),
      });
      expect(await newerOnNew.read("902")).toStrictEqual({ step: "idle", plan: "pro" });
    });

    it("a row already under NEW is only read: one statement, and the row stays as it was", async () => {
      const tableName = db.table("rr_reseal_new");
      await new PostgresStorage({
        client: isolate(),
        tableName,
        schema: Newer,
        codec: encryptedCodec({ secret: [NEW, OLD] }),
      }).write("903", { step: "idle", plan: "pro" });
      const before = await stored(tableName, "903");
      const { counted, bot, seen, writes } = olderBot(tableName);
      expect(await statementsPerUpdate(counted, bot, textMessage(903, "hi"))).toBe(1);
      expect(seen).toStrictEqual(["idle"]);
      expect(writes()).toStrictEqual([{ write: "unchanged", statements: 0, outcome: "ok" }]);
      expect(await stored(tableName, "903")).toBe(before);
    });
  });

  it("a session read before its row expired, while another update of the chat found none, is renewed by its unchanged write-back in one statement", async () => {
    const tableName = db.table("rr_expired_then_read");
    const observed = operations();
    const storage = new PostgresStorage<Session>({
      client: isolate(),
      tableName,
      millisecondsToLive: TTL,
      onEvent: observed.onEvent,
    });
    // Stored by another isolate (this storage's own write would keep it from renewing for half the TTL on its clock),
    // and read by update 1 with 20 s of its 60 left: past half its TTL, so the write-back is due to renew it.
    await new PostgresStorage<Session>({ client: isolate(), tableName, millisecondsToLive: TTL }).write("904", {
      step: "name",
    });
    await rewindExpiries(db.admin, tableName, TTL - 20_000);
    const bot = new Bot<Context & SessionFlavor<Session>>("123:offline", { botInfo });
    bot.use(session({ storage })); // no initial(): a chat without a session has ctx.session undefined
    const reached = signal();
    const gate = signal();
    const seen: unknown[] = [];
    bot.command("slow", async (ctx) => {
      seen.push(ctx.session.step);
      reached.resolve();
      await gate.promise;
    });
    bot.on("message", () => {}); // update 2 leaves the session alone
    const one = bot.handleUpdate(textMessage(904, "/slow"));
    await reached.promise;
    await rewindExpiries(db.admin, tableName, 30_000); // the row expired 10 s ago, while update 1 ran
    await bot.handleUpdate(textMessage(904, "hi")); // reads, finds no session, writes nothing
    expect(await new PostgresStorage<Session>({ client: db.pool, tableName }).read("904")).toBeUndefined();
    gate.resolve();
    await one;
    expect(seen).toStrictEqual(["name"]);
    expect(observed.writes().at(-1)).toStrictEqual({ write: "renewed", statements: 1, outcome: "ok" });
    const [row] = (await db.admin(
      `SELECT value::text AS value, extract(epoch FROM expires_at - now()) * 1000 AS left FROM "${tableName}" WHERE key = $1`,
      ["904"],
    )) as [{ value: string; left: number | string }];
    expect(row.value).toBe('{"step":"name"}');
    expect(Number(row.left)).toBeGreaterThan(TTL - 10_000);
    expect(await new PostgresStorage<Session>({ client: db.pool, tableName }).read("904")).toStrictEqual({
      step: "name",
    });
  });

  it("validateOnWrite: false, a new chat: plan set by update() in the first handler stays after a second update of the chat read it meanwhile", async () => {
    const Billing = z.object({
      step: z.string().default("idle"),
      count: z.number().default(0),
      plan: z.string().optional(),
    });
    const tableName = db.table("rr_updated_plain");
    const storage = new PostgresStorage({ client: isolate(), tableName, schema: Billing, validateOnWrite: false });
    const bot = new Bot<Context & SessionFlavor<z.infer<typeof Billing>>>("123:offline", { botInfo });
    bot.use(session({ initial: () => ({ step: "idle", count: 0 }), storage }));
    const updated = signal();
    const gate = signal();
    bot.command("pay", async (ctx) => {
      ctx.session.count += 1;
      await storage.update(String(ctx.chat.id), { plan: "pro" });
      updated.resolve();
      await gate.promise;
    });
    const seen: unknown[] = [];
    bot.on("message", (ctx) => void seen.push(ctx.session.plan)); // update 2 only reads
    const one = bot.handleUpdate(textMessage(905, "/pay"));
    await updated.promise;
    await bot.handleUpdate(textMessage(905, "hello")); // read while update 1 is still running
    gate.resolve();
    await one; // update 1 writes back initial()'s object, count 1
    expect(seen).toStrictEqual(["pro"]);
    expect(await stored(tableName, "905")).toBe('{"step":"idle","count":1,"plan":"pro"}');
    expect(await new PostgresStorage({ client: db.pool, tableName, schema: Billing }).read("905")).toStrictEqual({
      step: "idle",
      count: 1,
      plan: "pro",
    });
  });

  it("codec: JSON with z.coerce.date(): an onConflict function is given base, ours and theirs all with Dates", async () => {
    const Stamped = z.object({ at: z.coerce.date(), n: z.number() });
    type Stamped = z.infer<typeof Stamped>;
    const tableName = db.table("rr_conflict_base");
    const asked: [Stamped | undefined, Stamped, Stamped | undefined, WriteConflict][] = [];
    const options = {
      tableName,
      schema: Stamped,
      codec: JSON,
      onConflict: (base: Stamped | undefined, ours: Stamped, theirs: Stamped | undefined, conflict: WriteConflict) => {
        asked.push([base, ours, theirs, conflict]);
        return ours;
      },
    };
    const a = new PostgresStorage({ client: isolate(), ...options });
    const b = new PostgresStorage({ client: isolate(), ...options });
    await a.write("chat", { at: new Date(0), n: 0 });
    const ours = (await a.read("chat")) as Stamped;
    const theirs = (await b.read("chat")) as Stamped;
    theirs.n = 2;
    await b.write("chat", theirs);
    ours.n = 1;
    await a.write("chat", ours);
    expect(asked).toStrictEqual([
      [
        { at: new Date(0), n: 0 },
        { at: new Date(0), n: 1 },
        { at: new Date(0), n: 2 },
        { key: "chat", fields: ["n"] },
      ],
    ]);
    expect(await stored(tableName, "chat")).toBe('{"at":"1970-01-01T00:00:00.000Z","n":1}');
  });
});
