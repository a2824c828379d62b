import { PGlite } from "@electric-sql/pglite";
import { Client as NeonClient, Pool as NeonPool, neon } from "@neondatabase/serverless";
import { sql as vercelSql, type VercelClient, type VercelPool } from "@vercel/postgres";
import { Bot, session, type Context, type SessionFlavor, type StorageAdapter } from "grammy";
import pg from "pg";
import postgres from "postgres";
import { describe, expect, expectTypeOf, it } from "vitest";
import { PostgresStorage, type PostgresClient } from "../src/index.js";

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
    bot.use(session({ initial: (): Form => ({ step: "idle" }), storage: new PostgresStorage({ client: { query: async () => [] } }) }));
    bot.use(
      // @ts-expect-error a storage of another type does not fit the session
      session({ initial: (): Form => ({ step: "idle" }), storage: new PostgresStorage<number>({ client: { query: async () => [] } }) }),
    );
    const storage = new PostgresStorage<Form>({ client: { query: async () => [] } });
    expectTypeOf(storage.read).returns.resolves.toEqualTypeOf<Form | undefined>();
    expectTypeOf(storage.readAllValues()).toEqualTypeOf<AsyncGenerator<Form, void, undefined>>();
    expect(storage).toBeInstanceOf(PostgresStorage);
  });
});
