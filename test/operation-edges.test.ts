import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { z } from "zod";
import { countStatements } from "../dev/counting.js";
import {
  PostgresStorage,
  PostgresStorageError,
  StorageOptionError,
  StorageValidationError,
  prefixKeys,
  type OperationEvent,
  type QueryParameter,
  type StorageEvent,
} from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { collect, sleep, useTables } from "./support/fixture.js";
import { losingFirstSetAnswer } from "./support/lost-answer.js";
import { rejection } from "./support/rejections.js";

// What the mutation run of the database-facing modules (npm run mutate:database) found no test of: the operation
// each event and error names, how many statements readAll* pages take, when a set gives up, when a written-back
// session's expiry is renewed, and the constructor's checks. Every test runs on a real database.

/** The error a call throws (it must throw a StorageOptionError). */
function refused(call: () => unknown): StorageOptionError {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(StorageOptionError);
    return error as StorageOptionError;
  }
  return expect.fail("did not throw");
}

describe("operation edges", () => {
  const tables = useTables();
  let pool: pg.Pool;
  beforeAll(() => {
    pool = new pg.Pool({ connectionString: databaseUrl(), max: 4 });
  });
  afterAll(async () => {
    await pool.end();
  });

  /** A storage whose events are collected, on a table of this file's own. */
  const observed = <T>(label: string, options: Partial<ConstructorParameters<typeof PostgresStorage<T>>[0]> = {}) => {
    const events: StorageEvent[] = [];
    const storage = new PostgresStorage<T>({
      client: pool,
      tableName: tables.table(label),
      onEvent: (event) => events.push(event),
      ...options,
    });
    const operations = () => events.filter((event): event is OperationEvent => event.kind === "operation");
    return { storage, events, operations };
  };

  describe("events name their operation", () => {
    it("one operation event per call, named after it, readAll* ended however the loop ends", async () => {
      const { storage, operations } = observed<{ n: number }>("events_named");
      await storage.createTable();
      await storage.write("a", { n: 1 });
      await storage.read("a");
      await storage.update("a", { n: 2 });
      await storage.has("a");
      await storage.write("b", { n: 3 });
      expect(await collect(storage.readAllKeys())).toStrictEqual(["a", "b"]);
      for await (const key of storage.readAllKeys()) {
        expect(key).toBe("a");
        break;
      }
      expect(await collect(storage.readAllValues())).toStrictEqual([{ n: 2 }, { n: 3 }]);
      await storage.delete("a");
      expect(await storage.prune()).toBe(0);
      const [created, ...rest] = operations();
      expect(created).toMatchObject({ operation: "createTable", outcome: "ok", statements: 1, createdTable: true });
      expect(rest.map(({ operation, outcome, statements }) => ({ operation, outcome, statements }))).toStrictEqual([
        { operation: "write", outcome: "ok", statements: 1 },
        { operation: "read", outcome: "ok", statements: 1 },
        { operation: "update", outcome: "ok", statements: 1 },
        { operation: "has", outcome: "ok", statements: 1 },
        { operation: "write", outcome: "ok", statements: 1 },
        { operation: "readAll", outcome: "ok", statements: 1 },
        { operation: "readAll", outcome: "ok", statements: 1 },
        { operation: "readAll", outcome: "ok", statements: 1 },
        { operation: "delete", outcome: "ok", statements: 1 },
        { operation: "prune", outcome: "ok", statements: 1 },
      ]);
    });

    // PostgreSQL reserves schema names starting with pg_: the schema cannot be created, so nothing is. PGlite, a
    // single-user server, creates it all the same, so there the test has nothing to fail on.
    it.skipIf(inject("backend") === "pglite")("createTable() that fails rejects, and its event says so", async () => {
      const { storage, operations } = observed<number>("create_fails", { tableName: "pg_gps_test_reserved.sessions" });
      const error = await rejection(storage.createTable());
      expect(error).toMatchObject({ code: "42939", operation: "createTable", table: "pg_gps_test_reserved.sessions" });
      expect(error.message).toMatch(/^createTable of table "pg_gps_test_reserved"\."sessions" failed: /);
      expect(operations()).toMatchObject([
        { operation: "createTable", outcome: "error", code: "42939", statements: 2 },
      ]);
    });
  });

  describe("errors name their operation and key", () => {
    // A table made by hand without the expiry column: every statement but DELETE names a column it lacks (42703).
    const broken = async (
      label: string,
      options: Partial<ConstructorParameters<typeof PostgresStorage<{ n: number }>>[0]> = {},
    ) => {
      const { storage, operations } = observed<{ n: number }>(label, options);
      await tables.admin(`CREATE TABLE "${storage.tableName}" (key text PRIMARY KEY, value json NOT NULL)`);
      return { storage, operations };
    };
    const expectFailure = (error: PostgresStorageError, operation: string, key: string | undefined) => {
      expect({ code: error.code, operation: error.operation, key: error.key }).toStrictEqual({
        code: "42703",
        operation,
        key,
      });
      expect(error.message.startsWith(`${operation} of `)).toBe(true);
    };

    it("read, has, update (with and without a schema, and of an empty patch), readAll*, prune", async () => {
      const { storage, operations } = await broken("named_errors");
      expectFailure(await rejection(storage.read("k")), "read", "k");
      expectFailure(await rejection(storage.has("k")), "has", "k");
      expectFailure(await rejection(storage.update("k", { n: 1 })), "update", "k");
      expectFailure(await rejection(storage.update("k", {})), "update", "k");
      expectFailure(await rejection(collect(storage.readAllKeys())), "readAll", undefined);
      expectFailure(await rejection(collect(storage.readAllEntries())), "readAll", undefined);
      expectFailure(await rejection(storage.prune()), "prune", undefined);
      expect(operations().map(({ operation, outcome, code }) => [operation, outcome, code])).toStrictEqual([
        ["read", "error", "42703"],
        ["has", "error", "42703"],
        ["update", "error", "42703"],
        ["update", "error", "42703"],
        ["readAll", "error", "42703"],
        ["readAll", "error", "42703"],
        ["prune", "error", "42703"],
      ]);
      const checked = (await broken("named_errors_schema", { schema: z.object({ n: z.number() }) })).storage;
      // With a schema the merge happens here, after a read of the stored value.
      expectFailure(await rejection(checked.update("k", { n: 1 })), "update", "k");
    });

    it("an update whose set the database refuses names update, and leaves the row", async () => {
      const { storage } = observed<{ n: number; s?: string | undefined }>("named_set", {
        schema: z.object({ n: z.number(), s: z.string().optional() }),
      });
      await storage.write("k", { n: 1 });
      await tables.admin(`ALTER TABLE "${storage.tableName}" ADD CONSTRAINT short CHECK (length(value::text) < 30)`);
      const long = "x".repeat(40);
      for (const key of ["k", "fresh"]) {
        const error = await rejection(storage.update(key, { n: 2, s: long }));
        expect({ code: error.code, operation: error.operation, key: error.key, inDoubt: error.inDoubt }).toStrictEqual({
          code: "23514",
          operation: "update",
          key,
          inDoubt: false,
        });
        expect(error.message.startsWith(`update of key "${key}" in table `)).toBe(true);
      }
      expect(await storage.read("k")).toStrictEqual({ n: 1 });
      expect(await storage.has("fresh")).toBe(false);
    });

    it("a key that is no string: the error names the operation, and no key", async () => {
      const { storage } = observed<number>("bad_keys");
      for (const [operation, call] of [
        ["read", () => storage.read(42 as never)],
        ["write", () => storage.write(42 as never, 1)],
        ["update", () => storage.update(42 as never, 1 as never)],
        ["delete", () => storage.delete(42 as never)],
        ["has", () => storage.has(42 as never)],
      ] as const) {
        const error = await rejection(call());
        expect({ operation: error.operation, key: error.key, table: error.table }).toStrictEqual({
          operation,
          key: undefined,
          table: storage.tableName,
        });
        expect(error.message).toMatch(/session keys must be strings, got number/);
      }
    });

    it("a stored value that fails the schema: readAllEntries names readAll and its key, or leaves it out", async () => {
      const schema = z.object({ n: z.number() });
      const throwing = observed<{ n: number }>("readall_invalid", { schema }).storage;
      await throwing.createTable();
      await tables.admin(
        `INSERT INTO "${throwing.tableName}" (key, value) VALUES ('k1', '{"n":1}'), ('k2', '{"n":"x"}'), ('k3', '{"n":3}')`,
      );
      const error = await rejection(collect(throwing.readAllEntries()));
      expect(error).toBeInstanceOf(StorageValidationError);
      expect({ operation: error.operation, key: error.key }).toStrictEqual({ operation: "readAll", key: "k2" });
      const discarding = new PostgresStorage({
        client: pool,
        tableName: throwing.tableName,
        schema,
        onInvalid: "discard",
      });
      expect(await collect(discarding.readAllEntries())).toStrictEqual([
        ["k1", { n: 1 }],
        ["k3", { n: 3 }],
      ]);
      expect(await collect(discarding.readAllValues())).toStrictEqual([{ n: 1 }, { n: 3 }]);
      expect(await collect(discarding.readAllKeys())).toStrictEqual(["k1", "k2", "k3"]);
    });
  });

  describe("a read inside a write that loses its connection changed nothing: the write is not in doubt", () => {
    /** A query() client on the pool whose reads (SELECT) lose their connection after `healthyReads` of them. */
    const losingReads = (healthyReads: number) => {
      let reads = 0;
      return {
        query: async (text: string, params: QueryParameter[]) => {
          if (text.startsWith("SELECT") && ++reads > healthyReads)
            throw new Error("Connection terminated unexpectedly");
          return pool.query(text, params);
        },
      };
    };
    const retry = { attempts: 2, baseDelayMs: 0, maxDelayMs: 0 };

    it("update() with a schema, whose read of the row fails", async () => {
      const name = tables.table("lost_read_update");
      await new PostgresStorage({ client: pool, tableName: name }).write("k", { a: 1 });
      const schema = z.object({ a: z.number(), b: z.number().optional() });
      const storage = new PostgresStorage({ client: losingReads(0), tableName: name, schema, retry });
      const error = await rejection(storage.update("k", { b: 2 }));
      expect({ operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({
        operation: "update",
        inDoubt: false,
      });
      expect(error.message).not.toMatch(/may have taken effect/);
      expect(await new PostgresStorage({ client: pool, tableName: name }).read("k")).toStrictEqual({ a: 1 });
    });

    it("a write-back that lost to another writer, whose read of the row fails", async () => {
      const name = tables.table("lost_read_write_back");
      const other = new PostgresStorage<Record<string, number>>({ client: pool, tableName: name });
      await other.write("k", { a: 1 });
      const storage = new PostgresStorage<Record<string, number>>({ client: losingReads(1), tableName: name, retry });
      const session = (await storage.read("k")) as Record<string, number>;
      await other.update("k", { c: 3 });
      session.b = 2;
      const error = await rejection(storage.write("k", session));
      expect({ operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({
        operation: "write",
        inDoubt: false,
      });
      expect(await other.read("k")).toStrictEqual({ a: 1, c: 3 });
    });
  });

  describe("readAll* pages", () => {
    /** A storage over a table holding `keys`, and how many statements each readAll* sent. */
    const seeded = async (label: string, keys: string[], options: { prefix?: string } = {}) => {
      const { storage, operations } = observed<number>(label, {
        ...(options.prefix === undefined ? {} : { keyBuilder: prefixKeys(options.prefix) }),
      });
      await storage.createTable();
      await tables.admin(
        `INSERT INTO "${storage.tableName}" (key, value) SELECT k, '1'::json FROM unnest($1::text[]) AS k`,
        [keys],
      );
      const statementsOf = async (scan: AsyncIterable<unknown>) => {
        const before = operations().length;
        const items = await collect(scan);
        const [event, ...more] = operations().slice(before);
        expect(more).toStrictEqual([]);
        expect(event).toMatchObject({ operation: "readAll", outcome: "ok" });
        return { count: items.length, statements: event?.statements };
      };
      return { storage, statementsOf };
    };
    const numbered = (prefix: string, count: number) =>
      Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(4, "0")}`);

    it("keys 1000 a statement, entries 100; a short page is the last", async () => {
      const { storage, statementsOf } = await seeded("pages", numbered("k", 150));
      expect(await statementsOf(storage.readAllKeys())).toStrictEqual({ count: 150, statements: 1 });
      expect(await statementsOf(storage.readAllEntries())).toStrictEqual({ count: 150, statements: 2 });
      expect(await statementsOf(storage.readAllValues())).toStrictEqual({ count: 150, statements: 2 });
    });

    it("a prefix's scan stops at the end of the prefix, however many keys follow it", async () => {
      const { storage, statementsOf } = await seeded(
        "pages_prefix",
        [...numbered("app:", 3), ...numbered("zz:", 1000)],
        {
          prefix: "app",
        },
      );
      expect(await collect(storage.readAllKeys())).toStrictEqual(["0000", "0001", "0002"]);
      expect(await statementsOf(storage.readAllKeys())).toStrictEqual({ count: 3, statements: 1 });
      expect(await statementsOf(storage.readAllEntries())).toStrictEqual({ count: 3, statements: 1 });
    });
  });

  describe("compare-and-set loops give up", () => {
    // A trigger that skips every UPDATE of the table: each compare-and-set loses, as it would to a writer that always
    // comes first. The table and the trigger's function live in a schema of their own, dropped afterwards.
    const alwaysLosing = async (label: string, schema?: z.ZodType<{ n: number }>) => {
      const space = tables.schema(label);
      const counted = countStatements(pool);
      const storage = new PostgresStorage<{ n: number }>({
        client: counted.client,
        tableName: `${space}.sessions`,
        ...(schema === undefined ? {} : { schema }),
      });
      await storage.write("k", { n: 1 });
      await tables.admin(
        `CREATE FUNCTION "${space}".skip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`,
      );
      await tables.admin(
        `CREATE TRIGGER skip BEFORE UPDATE ON "${space}".sessions FOR EACH ROW EXECUTE FUNCTION "${space}".skip()`,
      );
      // A compare-and-set, alone or in the WITH that returns its rows.
      const updates = () => counted.statements.filter((text) => /^(WITH changed AS \()?UPDATE /.test(text)).length;
      return { storage, updates };
    };

    it("an update() with a schema tries its set 100 times, then rejects and writes nothing", async () => {
      const { storage, updates } = await alwaysLosing("lost_update", z.object({ n: z.number() }));
      const error = await rejection(storage.update("k", { n: 2 }));
      expect(error.message).toBe(
        'update() of key "k" lost to concurrent writers 100 times in a row; nothing was written, try again',
      );
      expect({ operation: error.operation, key: error.key, inDoubt: error.inDoubt }).toStrictEqual({
        operation: "update",
        key: "k",
        inDoubt: false,
      });
      expect(updates()).toBe(100);
      expect(await storage.read("k")).toStrictEqual({ n: 1 });
    });

    it("a write-back tries its set 100 times, then rejects and writes nothing", async () => {
      const { storage, updates } = await alwaysLosing("lost_write");
      const session = (await storage.read("k")) as { n: number };
      session.n = 2;
      const error = await rejection(storage.write("k", session));
      expect(error.message).toBe(
        'write() of key "k" lost to concurrent writers 100 times in a row; nothing was written, try again',
      );
      expect({ operation: error.operation, key: error.key }).toStrictEqual({ operation: "write", key: "k" });
      expect(updates()).toBe(100);
      expect(await storage.read("k")).toStrictEqual({ n: 1 });
    });

    it("a write-back whose first set's answer was lost may have been written: losing 100 times, it says so", async () => {
      const space = tables.schema("lost_answer_then_lost");
      const tableName = `${space}.sessions`;
      // The first set commits; before its answer arrives another writer changes the row, every later set starts to
      // lose (a trigger skips each UPDATE), and the connection breaks, so the answer is lost.
      const lossy = losingFirstSetAnswer(pool, async () => {
        await tables.admin(`UPDATE "${space}".sessions SET value = '{"n":1,"m":1}'`);
        await tables.admin(
          `CREATE FUNCTION "${space}".skip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`,
        );
        await tables.admin(
          `CREATE TRIGGER skip BEFORE UPDATE ON "${space}".sessions FOR EACH ROW EXECUTE FUNCTION "${space}".skip()`,
        );
      });
      const storage = new PostgresStorage<{ n: number; m?: number }>({ client: lossy, tableName });
      await storage.write("k", { n: 1 });
      const session = (await storage.read("k")) as { n: number };
      session.n = 2;
      const error = await rejection(storage.write("k", session));
      expect(error.message).toBe(
        'write() of key "k" lost to concurrent writers 100 times in a row; a try whose answer was lost may have been ' +
          "written before another writer's change: read the key to see",
      );
      expect({ operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({
        operation: "write",
        inDoubt: true,
      });
      expect(await storage.read("k")).toStrictEqual({ n: 1, m: 1 });
    });
  });

  it("a session written back again unchanged renews its row once half its time to live has passed", async () => {
    const { storage, operations } = observed<{ n: number }>("renew_half", { millisecondsToLive: 2_000 });
    await storage.write("k", { n: 1 });
    const session = (await storage.read("k")) as { n: number };
    session.n = 2;
    await storage.write("k", session); // set: renewed by the write itself
    await storage.write("k", session); // unchanged, well within half the TTL: nothing sent
    await sleep(1_200);
    await storage.write("k", session); // unchanged, but more than half the TTL since the set: renewed
    expect(
      operations()
        .filter((event) => event.operation === "write")
        .map(({ write, statements }) => ({ write, statements })),
    ).toStrictEqual([
      { write: "replaced", statements: 3 },
      { write: "set", statements: 1 },
      { write: "unchanged", statements: 0 },
      { write: "renewed", statements: 1 },
    ]);
    expect(await storage.read("k")).toStrictEqual({ n: 2 });
  });

  describe("the constructor's checks", () => {
    it("options must be an object", () => {
      for (const options of [null, undefined, "postgres://localhost"]) {
        const error = refused(() => new PostgresStorage(options as never));
        expect(error.option).toBe("client");
        expect(error.message).toMatch(/takes an object of options/);
      }
    });

    it("a table name part of 63 characters is taken, one of 64 refused; refusals show what they got", async () => {
      const base = tables.table("len");
      const longest = `${base}_${"x".repeat(62 - base.length)}`;
      expect(longest).toHaveLength(63);
      try {
        const storage = new PostgresStorage<number>({ client: pool, tableName: longest });
        await storage.write("k", 1);
        expect(await storage.read("k")).toBe(1);
      } finally {
        await tables.admin(`DROP TABLE IF EXISTS "${longest}"`);
      }
      const tooLong = refused(() => new PostgresStorage({ client: pool, tableName: `${longest}x` }));
      expect(tooLong.message).toBe(
        `tableName "${longest}x" is too long: PostgreSQL keeps only 63 characters of a name`,
      );
      expect(refused(() => new PostgresStorage({ client: pool, tableName: 42 as never })).message).toBe(
        'tableName 42 must be a non-empty string like "sessions" or "app.sessions"',
      );
      expect(refused(() => new PostgresStorage({ client: pool, tableName: "a.b.c" })).message).toBe(
        'tableName "a.b.c" has more than one dot; write "table" or "schema.table"',
      );
    });

    it('writeBacks is "merge", "overwrite" or left out', async () => {
      const error = refused(() => new PostgresStorage({ client: pool, writeBacks: "last" as never }));
      expect(error.option).toBe("writeBacks");
      expect(error.message).toBe('writeBacks must be "merge" or "overwrite"');
      for (const writeBacks of ["merge", "overwrite", undefined] as const) {
        const tableName = tables.table(`wb_${writeBacks ?? "default"}`);
        const storage = new PostgresStorage<{ a?: number; b?: number }>({ client: pool, tableName, writeBacks });
        await storage.write("k", {});
        const session = (await storage.read("k")) as { a?: number; b?: number };
        await tables.admin(`UPDATE "${tableName}" SET value = '{"b":2}'`); // another writer
        session.a = 1;
        await storage.write("k", session);
        expect(await storage.read("k")).toStrictEqual(writeBacks === "overwrite" ? { a: 1 } : { b: 2, a: 1 });
      }
    });
  });
});
