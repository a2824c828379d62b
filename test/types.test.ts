import { PGlite } from "@electric-sql/pglite";
import { Client as NeonClient, Pool as NeonPool, neon } from "@neondatabase/serverless";
import { sql as vercelSql, type VercelClient, type VercelPool } from "@vercel/postgres";
import { Bot, session, type Context, type SessionFlavor, type StorageAdapter } from "grammy";
import pg from "pg";
import postgres from "postgres";
import * as v from "valibot";
import { describe, expect, expectTypeOf, it } from "vitest";
import { z } from "zod";
import {
  PostgresStorage,
  compressedCodec,
  encryptedCodec,
  jsonWithDates,
  sessionKey,
  type Codec,
  type LayeredCodec,
  type PostgresClient,
} from "../src/index.js";

interface Form {
  step: "idle" | "name";
  name?: string;
}

// These assertions are checked by `tsc` (npm test runs it first); the runtime
// expectations confirm the objects are what the types claim.
describe("types", () => {
  it("implements grammY's StorageAdapter in full", () => {
    const storage = new PostgresStorage<Form>({ client: { query: async () => [] } });
    expectTypeOf(storage).toExtend<Required<StorageAdapter<Form>>>();
    expect(typeof storage.readAllEntries).toBe("function");
  });

  it("accepts every client as the user holds it", () => {
    expectTypeOf<pg.Pool>().toExtend<PostgresClient>();
    expectTypeOf<pg.Client>().toExtend<PostgresClient>();
    expectTypeOf<pg.PoolClient>().toExtend<PostgresClient>();
    expectTypeOf<postgres.Sql>().toExtend<PostgresClient>();
    expectTypeOf<PGlite>().toExtend<PostgresClient>();
    expectTypeOf(neon("postgres://u@h/db")).toExtend<PostgresClient>();
    expectTypeOf<NeonPool>().toExtend<PostgresClient>();
    expectTypeOf<NeonClient>().toExtend<PostgresClient>();
    expectTypeOf(vercelSql).toExtend<PostgresClient>();
    expectTypeOf<VercelPool>().toExtend<PostgresClient>();
    expectTypeOf<VercelClient>().toExtend<PostgresClient>();
    expectTypeOf<string>().not.toExtend<PostgresClient>();
  });

  it("takes its value type from where it is used", () => {
    const bot = new Bot<Context & SessionFlavor<Form>>("0:test", { botInfo: undefined as never });
    bot.use(
      session({
        initial: (): Form => ({ step: "idle" }),
        storage: new PostgresStorage({ client: { query: async () => [] } }),
      }),
    );
    // biome-ignore format: TypeScript reports the mismatch on the whole call, which must stay one line
    bot.use(
      // @ts-expect-error a storage of another type does not fit the session
      session({ initial: (): Form => ({ step: "idle" }), storage: new PostgresStorage<number>({ client: { query: async () => [] } }) }),
    );
    const storage = new PostgresStorage<Form>({ client: { query: async () => [] } });
    expectTypeOf(storage.read).returns.resolves.toEqualTypeOf<Form | undefined>();
    expectTypeOf(storage.readAllValues()).toEqualTypeOf<AsyncGenerator<Form, void, undefined>>();
    expect(storage).toBeInstanceOf(PostgresStorage);
  });

  describe("typed by a schema", () => {
    const client = { query: async () => [] };
    const Session = z.object({
      step: z.enum(["idle", "name", "age"]),
      name: z.string().optional(),
      at: z.coerce.date().optional(),
    });
    type Session = z.infer<typeof Session>;

    it("infers the value type from a zod schema's output", () => {
      const storage = new PostgresStorage({ client, schema: Session });
      expectTypeOf(storage).toEqualTypeOf<PostgresStorage<Session>>();
      expectTypeOf(storage.update).parameter(1).toEqualTypeOf<Partial<Session>>();
      expectTypeOf(storage.update).returns.resolves.toEqualTypeOf<Session>();
      expect(storage).toBeInstanceOf(PostgresStorage);
    });

    it("types ctx.session through session({ storage }) with no annotation", () => {
      const storage = new PostgresStorage({ client, schema: Session });
      const middleware = session({ initial: () => ({ step: "idle" as const }), storage });
      type Ctx = Parameters<typeof middleware>[0];
      expectTypeOf<Ctx["session"]>().toEqualTypeOf<Session>();
      // @ts-expect-error initial() must produce what the schema describes
      session({ initial: () => ({ step: "flying" }), storage });
      const bot = new Bot<Context & SessionFlavor<Session>>("0:test");
      bot.use(session({ initial: (): Session => ({ step: "idle" }), storage }));
      bot.on("message", (ctx) => expectTypeOf(ctx.session.step).toEqualTypeOf<"idle" | "name" | "age">());
      expect(typeof middleware).toBe("function");
    });

    it("infers from valibot too, and types onInvalid's repair", () => {
      const Counter = v.object({ count: v.number() });
      const storage = new PostgresStorage({
        client,
        schema: Counter,
        onInvalid: ({ value }) => ({ count: Number(value) || 0 }),
      });
      expectTypeOf(storage).toEqualTypeOf<PostgresStorage<{ count: number }>>();
      // @ts-expect-error a repair must produce the schema's type
      new PostgresStorage({ client, schema: Counter, onInvalid: () => ({ count: "one" }) });
      expect(storage).toBeInstanceOf(PostgresStorage);
    });

    it("exports codecs and key strategies with their types", () => {
      expectTypeOf(jsonWithDates).toEqualTypeOf<Codec>();
      expectTypeOf(encryptedCodec).returns.toEqualTypeOf<LayeredCodec>();
      expectTypeOf(compressedCodec).returns.toEqualTypeOf<LayeredCodec>();
      expectTypeOf<LayeredCodec>().toMatchTypeOf<Codec>();
      expectTypeOf<LayeredCodec["inner"]>().toEqualTypeOf<Codec>();
      // Compress, then encrypt: a LayeredCodec is a codec encryptedCodec takes.
      expectTypeOf(encryptedCodec).toBeCallableWith({ secret: "", codec: compressedCodec() });
      const bot = new Bot<Context & SessionFlavor<Session>>("0:test");
      bot.use(
        session({
          initial: (): Session => ({ step: "idle" }),
          getSessionKey: sessionKey("user-in-chat", { withBotId: true }),
        }),
      );
      expect(typeof sessionKey("chat")).toBe("function");
    });
  });
});
