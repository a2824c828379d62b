import { neon } from "@neondatabase/serverless";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { PostgresStorage, PostgresStorageError, jsonWithDates, type PostgresClient } from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { useFixture } from "./support/fixture.js";
import { useLocalNeon } from "./support/neon-clients.js";

describe("clients that reshape results", () => {
  const db = useFixture();
  useLocalNeon();

  it("refuses neon() in arrayMode with a clear error instead of misreading rows", async () => {
    const name = db.table("shape_array");
    await new PostgresStorage({ client: db.pool, tableName: name }).write("k", { v: 1 });
    const storage = new PostgresStorage({ client: neon(databaseUrl(), { arrayMode: true }), tableName: name });
    await expect(storage.read("k")).rejects.toThrow(/rows as arrays; pass it without arrayMode/);
  });

  it("works with postgres.js turning column names to camelCase, TTL included", async () => {
    const sql = postgres(databaseUrl(), { max: 2, transform: postgres.camel, onnotice: () => {} });
    try {
      const storage = new PostgresStorage({
        client: sql,
        tableName: db.table("shape_camel"),
        millisecondsToLive: 60_000,
      });
      await storage.write("some_key", { snake_case: 1 });
      expect(await storage.read("some_key")).toStrictEqual({ snake_case: 1 });
      expect(await storage.update("some_key", { more: 2 })).toStrictEqual({ snake_case: 1, more: 2 });
      const keys: string[] = [];
      for await (const key of storage.readAllKeys()) keys.push(key);
      expect(keys).toStrictEqual(["some_key"]);
    } finally {
      await sql.end();
    }
  });
});

describe("errors and options, without a database", () => {
  const failing = (...errors: unknown[]) => {
    const calls: string[] = [];
    const client: PostgresClient = {
      query: async (text: string) => {
        calls.push(text);
        throw errors[Math.min(calls.length, errors.length) - 1];
      },
    };
    return { client, calls };
  };

  it("does not take Node's error codes (EPIPE) for SQLSTATEs", async () => {
    const { client } = failing(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    const error = (await new PostgresStorage({ client, retry: false })
      .read("k")
      .catch((e: unknown) => e)) as PostgresStorageError;
    expect(error.code).toBeUndefined();
    expect(error.message).toMatch(/Check the connection string/);
  });

  it("asks for CREATE on the schema when creating the table is not allowed", async () => {
    const { client } = failing(
      Object.assign(new Error('relation "grammy_sessions" does not exist'), { code: "42P01" }),
      Object.assign(new Error("permission denied for schema public"), { code: "42501" }),
    );
    const error = (await new PostgresStorage({ client })
      .write("k", 1)
      .catch((e: unknown) => e)) as PostgresStorageError;
    expect(error.code).toBe("42501");
    expect(error.message).toMatch(
      /GRANT CREATE ON SCHEMA public to this role, or run createTableSql\("grammy_sessions"\) as the owner and pass createTable: false/,
    );
  });

  it.each([
    [
      "a refused connection (never ran)",
      Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED", syscall: "connect" }),
      6,
    ],
    [
      "an unreachable host while connecting",
      Object.assign(new Error("connect EHOSTUNREACH"), { code: "EHOSTUNREACH", syscall: "connect" }),
      6,
    ],
    [
      "an unreachable host on an open socket (it may have run)",
      Object.assign(new Error("read EHOSTUNREACH"), { code: "EHOSTUNREACH", syscall: "read" }),
      1,
    ],
    [
      "a reset whose cause looks like a refusal (the reset wins)",
      Object.assign(new Error("read ECONNRESET", { cause: Object.assign(new Error("x"), { code: "ECONNREFUSED" }) }), {
        code: "ECONNRESET",
      }),
      1,
    ],
    ["a serialization failure (rolled back)", Object.assign(new Error("could not serialize"), { code: "40001" }), 6],
  ])("update() tries %s this often", async (_label, error, tries) => {
    const { client, calls } = failing(error);
    await expect(
      new PostgresStorage({ client, retry: { baseDelayMs: 1 } }).update("k", { a: 1 }),
    ).rejects.toBeInstanceOf(PostgresStorageError);
    expect(calls).toHaveLength(tries);
  });

  it.each([
    { attempts: 0 },
    { attempts: Number.NaN },
    { attempts: 1.5 },
    { baseDelayMs: -1 },
    { maxDelayMs: Number.POSITIVE_INFINITY },
  ])("refuses retry options %o", (retry) => {
    expect(() => new PostgresStorage({ client: { query: async () => [] }, retry })).toThrow(
      /retry needs a whole number of attempts/,
    );
  });

  it("jsonWithDates refuses what it would change: NaN, and objects that would read back as Dates", async () => {
    await expect(Promise.resolve().then(() => jsonWithDates.stringify({ n: Number.NaN }))).rejects.toThrow(
      /value.n is NaN/,
    );
    await expect(Promise.resolve().then(() => jsonWithDates.stringify({ x: { $date: "2024-01-01" } }))).rejects.toThrow(
      /rename the key/,
    );
    expect(jsonWithDates.parse(await jsonWithDates.stringify({ x: { $date: "a", other: 1 } }))).toStrictEqual({
      x: { $date: "a", other: 1 },
    });
  });
});
