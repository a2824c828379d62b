import { randomUUID } from "node:crypto";
import { Bot, session, type Context, type SessionFlavor } from "grammy";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { countStatements, statementsPerUpdate } from "../dev/counting.js";
import { botInfo, textMessage } from "../dev/telegram.js";
import {
  PostgresStorage,
  StorageConflictError,
  encryptedCodec,
  type PostgresStorageOptions,
  type StorageEvent,
  type WriteConflict,
  type WriteOutcome,
} from "../src/index.js";
import { storedText, useFixture, useIsolates } from "./support/fixture.js";

type Session = Record<string, unknown>;

// A write-back is compared with the session as the read handed it out: through a schema, what the schema made of the
// row (unknown fields stripped, defaults filled, fields in its order), not the row's text; through encryptedCodec, the
// plain text, not one of the many ciphertexts of one session. A read that onInvalid discards hands out no session. A
// merge the storage makes is checked against the schema even when writes are not.
describe("write-backs compared with the session the read handed out", () => {
  const db = useFixture(2);
  /** A pool of its own, as a separate isolate has. */
  const isolate = useIsolates();
  const stored = (tableName: string, key: string) => storedText(db.admin, tableName, key);
  /** Writes a row as a storage without a schema does (and creates the table): a row from another version of the bot. */
  const seed = (tableName: string, key: string, value: unknown) =>
    new PostgresStorage<unknown>({ client: db.pool, tableName }).write(key, value);
  const outcome = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (failure: unknown) => failure,
    );
  /** The write outcomes an observed storage reports. */
  const writeOutcomes = () => {
    const outcomes: (WriteOutcome | undefined)[] = [];
    const onEvent = (event: StorageEvent) => {
      if (event.kind === "operation" && event.operation === "write") outcomes.push(event.write);
    };
    return { outcomes, onEvent };
  };

  describe("a gradual deployment: an older schema version's bot only reads ctx.session", () => {
    const V1 = z.object({ step: z.string() });
    const V2 = z.object({ step: z.string(), email: z.string().optional() });

    it("a schema that strips unknown fields writes nothing back, and the email the newer version stored stays", async () => {
      const tableName = db.table("seen_strip_readonly");
      const newer = new PostgresStorage({ client: isolate(), tableName, schema: V2 });
      await newer.write("501", { step: "idle", email: "ada@example.com" });
      const counted = countStatements(isolate());
      const observed = writeOutcomes();
      const older = new PostgresStorage({
        client: counted.client,
        tableName,
        schema: V1,
        onEvent: observed.onEvent,
      });
      const bot = new Bot<Context & SessionFlavor<z.infer<typeof V1>>>("123:offline", { botInfo });
      bot.use(session({ initial: () => ({ step: "idle" }), storage: older }));
      const seen: string[] = [];
      bot.on("message", (ctx) => void seen.push(ctx.session.step));
      // The read, and no write: grammY's write-back of the session the handler left as it was sends nothing.
      expect(await statementsPerUpdate(counted, bot, textMessage(501, "hi"))).toBe(1);
      expect(seen).toStrictEqual(["idle"]);
      expect(observed.outcomes).toStrictEqual(["unchanged"]);
      expect(await stored(tableName, "501")).toBe('{"step":"idle","email":"ada@example.com"}');
      expect(await new PostgresStorage({ client: db.pool, tableName, schema: V2 }).read("501")).toStrictEqual({
        step: "idle",
        email: "ada@example.com",
      });
    });

    it.each([
      [
        "fills a default the old row lacks",
        z.object({ step: z.string(), lang: z.string().default("en") }),
        { step: "idle" },
        '{"step":"idle"}',
      ],
      [
        "puts the fields in another order",
        z.object({ step: z.string(), email: z.string().optional() }),
        { email: "ada@example.com", step: "idle" },
        '{"email":"ada@example.com","step":"idle"}',
      ],
    ])("a schema that %s writes nothing back, and the row stays as it was", async (_, schema, row, text) => {
      const tableName = db.table("seen_shaped_readonly");
      await seed(tableName, "502", row);
      const counted = countStatements(isolate());
      const observed = writeOutcomes();
      const storage = new PostgresStorage<Session>({
        client: counted.client,
        tableName,
        schema,
        onEvent: observed.onEvent,
      });
      const bot = new Bot<Context & SessionFlavor<Session>>("123:offline", { botInfo });
      bot.use(session({ initial: () => ({ step: "idle" }), storage }));
      const seen: unknown[] = [];
      bot.on("message", (ctx) => void seen.push(ctx.session.step));
      expect(await statementsPerUpdate(counted, bot, textMessage(502, "hi"))).toBe(1);
      expect(seen).toStrictEqual(["idle"]);
      expect(observed.outcomes).toStrictEqual(["unchanged"]);
      expect(await stored(tableName, "502")).toBe(text);
    });
  });

  describe("a default that draws a random id, on an old row without one", () => {
    const WithId = z.object({
      step: z.string(),
      note: z.string().optional(),
      id: z.string().default(() => randomUUID()),
    });

    it.each(["throw", "ours"] as const)(
      'onConflict "%s": two isolates changing other fields make no conflict, and the row keeps the id the first write stored',
      async (onConflict) => {
        const tableName = db.table("seen_random_default");
        await seed(tableName, "chat", { step: "idle" });
        const a = new PostgresStorage({ client: isolate(), tableName, schema: WithId, onConflict });
        const b = new PostgresStorage({ client: isolate(), tableName, schema: WithId, onConflict });
        const ours = (await a.read("chat")) as z.infer<typeof WithId>;
        const theirs = (await b.read("chat")) as z.infer<typeof WithId>;
        // Each read drew an id of its own.
        expect(ours.id).not.toBe(theirs.id);
        theirs.note = "from B";
        await b.write("chat", theirs);
        expect(JSON.parse((await stored(tableName, "chat")) as string)).toStrictEqual({
          step: "idle",
          note: "from B",
          id: theirs.id,
        });
        ours.step = "name";
        expect(await outcome(a.write("chat", ours))).toBeUndefined();
        expect(JSON.parse((await stored(tableName, "chat")) as string)).toStrictEqual({
          step: "name",
          note: "from B",
          id: theirs.id,
        });
      },
    );
  });

  it('onInvalid "discard": an update() in the handler of a chat whose stored session was discarded is kept, as in a new chat', async () => {
    const Billing = z.object({ count: z.number().default(0), plan: z.string().default("free") });
    const tableName = db.table("seen_discard_update");
    await seed(tableName, "503", { count: "three" }); // fails the schema: the read discards it
    const storage = new PostgresStorage({ client: isolate(), tableName, schema: Billing, onInvalid: "discard" });
    const bot = new Bot<Context & SessionFlavor<z.infer<typeof Billing>>>("123:offline", { botInfo });
    bot.use(session({ initial: () => ({ count: 0, plan: "free" }), storage }));
    bot.command("upgrade", async (ctx) => {
      ctx.session.count += 1;
      await storage.update(String(ctx.chat.id), { plan: "pro" });
    });
    await bot.handleUpdate(textMessage(503, "/upgrade")); // the discarded row
    await bot.handleUpdate(textMessage(504, "/upgrade")); // a new chat
    expect([await stored(tableName, "503"), await stored(tableName, "504")]).toStrictEqual([
      '{"count":1,"plan":"pro"}',
      '{"count":1,"plan":"pro"}',
    ]);
  });

  describe("encryptedCodec: one session stored under many ciphertexts", () => {
    const codec = encryptedCodec({ secret: "s".repeat(40) });
    /** The session as a storage that never saw it decrypts it. */
    const fresh = (tableName: string, key: string) =>
      new PostgresStorage<Session>({ client: db.pool, tableName, codec }).read(key);

    it("a replaced ctx.session written back after another isolate re-encrypted the same session keeps that isolate's paid: true", async () => {
      const tableName = db.table("seen_encrypted_replaced");
      const a = new PostgresStorage<Session>({ client: isolate(), tableName, codec });
      const b = new PostgresStorage<Session>({ client: isolate(), tableName, codec });
      await b.write("chat", { step: "idle", paid: false });
      const first = (await a.read("chat")) as Session; // A, update 1: grammY reads
      await b.update("chat", { step: "idle" }); // B: "/cancel" when already idle: the same session, a new ciphertext
      const second = (await a.read("chat")) as Session; // A, update 2 of the chat reads the same session
      expect(second).toStrictEqual(first);
      await a.write("chat", second); // update 2 written back unchanged
      await b.update("chat", { paid: true }); // B: a payment webhook, acknowledged
      await a.write("chat", { ...first, step: "name" }); // update 1's handler replaced ctx.session
      expect(await fresh(tableName, "chat")).toStrictEqual({ step: "name", paid: true });
    });

    it("a new chat's update() in the handler is kept after another isolate applied the same update again", async () => {
      const tableName = db.table("seen_encrypted_new_chat");
      const a = new PostgresStorage<Session>({ client: isolate(), tableName, codec });
      const b = new PostgresStorage<Session>({ client: isolate(), tableName, codec });
      expect(await a.read("chat")).toBeUndefined(); // A, update 1: no row, grammY's initial()
      const first: Session = { step: "idle", plan: "free" };
      await a.update("chat", { plan: "pro" }); // update 1's handler, acknowledged
      await b.update("chat", { plan: "pro" }); // B: the same webhook delivered again: a new ciphertext
      const second = (await a.read("chat")) as Session; // A, update 2 of the chat
      expect(second).toStrictEqual({ plan: "pro" });
      await a.write("chat", second); // update 2 written back unchanged
      first.step = "name";
      await a.write("chat", first); // update 1's write-back of initial()'s object
      expect(await fresh(tableName, "chat")).toStrictEqual({ step: "name", plan: "pro" });
    });
  });

  describe("validateOnWrite: false, a schema with fields that must agree: a merge of two valid sessions that fails it", () => {
    const Range = z.object({ min: z.number(), max: z.number() }).refine((range) => range.min <= range.max, "min > max");
    type Range = z.infer<typeof Range>;

    /**
     * A and B read { min: 1, max: 5 }; B writes back max = 2, A then min = 4: each valid, their field merge
     * { min: 4, max: 2 } is not. Answers A's error, the row, and what a storage with the schema reads (or its error).
     */
    const mergeFailing = async (onConflict: PostgresStorageOptions<Range>["onConflict"]) => {
      const tableName = db.table("seen_merge_invalid");
      const options = { tableName, schema: Range, onConflict, validateOnWrite: false };
      const a = new PostgresStorage({ client: isolate(), ...options });
      const b = new PostgresStorage({ client: isolate(), ...options });
      await b.write("chat", { min: 1, max: 5 });
      const ours = (await a.read("chat")) as Range;
      const theirs = (await b.read("chat")) as Range;
      theirs.max = 2;
      await b.write("chat", theirs);
      ours.min = 4;
      const error = await outcome(a.write("chat", ours));
      const read = await new PostgresStorage({ client: db.pool, tableName, schema: Range })
        .read("chat")
        .catch((failure: unknown) => failure);
      return { error, row: await stored(tableName, "chat"), read };
    };

    it('"ours": A\'s session is stored whole', async () => {
      expect(await mergeFailing("ours")).toStrictEqual({
        error: undefined,
        row: '{"min":4,"max":5}',
        read: { min: 4, max: 5 },
      });
    });

    it('"theirs": B\'s row is kept', async () => {
      expect(await mergeFailing("theirs")).toStrictEqual({
        error: undefined,
        row: '{"min":1,"max":2}',
        read: { min: 1, max: 2 },
      });
    });

    it('"throw": StorageConflictError with no fields, and nothing written', async () => {
      const { error, row, read } = await mergeFailing("throw");
      expect(error).toBeInstanceOf(StorageConflictError);
      expect((error as StorageConflictError).fields).toStrictEqual([]);
      expect((error as Error).message).toMatch(/the merge with another writer's change fails the schema/);
      expect({ row, read }).toStrictEqual({ row: '{"min":1,"max":2}', read: { min: 1, max: 2 } });
    });

    it("a function is asked, told no fields, and what it answers is stored", async () => {
      const asked: [Range | undefined, Range, Range | undefined, WriteConflict][] = [];
      const result = await mergeFailing((base, ours, theirs, conflict) => {
        asked.push([base, ours, theirs, conflict]);
        return ours;
      });
      expect(asked).toStrictEqual([
        [
          { min: 1, max: 5 },
          { min: 4, max: 5 },
          { min: 1, max: 2 },
          { key: "chat", fields: [] },
        ],
      ]);
      expect(result).toStrictEqual({ error: undefined, row: '{"min":4,"max":5}', read: { min: 4, max: 5 } });
    });
  });
});
