import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { PostgresStorage, PostgresStorageError, type PostgresClient } from "../src/index.js";

// Port 1 on loopback: nothing listens there, so every connection is refused at once.
const refusing = "postgres://postgres@127.0.0.1:1/test";

async function failure(promise: Promise<unknown>): Promise<PostgresStorageError> {
  const error = await promise.then(
    (value) => {
      throw new Error(`resolved to ${String(value)} instead of rejecting`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PostgresStorageError);
  return error as PostgresStorageError;
}

describe("a client whose connection fails", () => {
  const cases: [string, () => Promise<{ client: PostgresClient; close(): Promise<void> }>][] = [
    [
      "pg Pool",
      async () => {
        const pool = new pg.Pool({ connectionString: refusing });
        return { client: pool, close: () => pool.end() };
      },
    ],
    [
      "postgres.js",
      async () => {
        // postgres.js backs off up to 20 s between reconnects by default; the test need not wait that long.
        const sql = postgres(refusing, { max: 1, connect_timeout: 2, backoff: () => 0.02 });
        return { client: sql, close: () => sql.end() };
      },
    ],
    [
      "closed PGlite",
      async () => {
        const db = await PGlite.create();
        await db.close();
        return { client: db, close: async () => {} };
      },
    ],
  ];

  it.each(cases)(
    "%s: read, has and readAllKeys reject with PostgresStorageError, never undefined",
    async (_name, open) => {
      const { client, close } = await open();
      try {
        const storage = new PostgresStorage({ client });
        const error = await failure(storage.read("k"));
        expect(error.message).toMatch(/^read of key "k"/);
        expect(error.cause).toBeDefined();
        await failure(storage.has("k"));
        await failure(storage.write("k", 1));
        await failure(storage.delete("k"));
        await failure(
          (async () => {
            for await (const key of storage.readAllKeys()) return key;
          })(),
        );
      } finally {
        await close();
      }
    },
  );

  it("keeps the SQLSTATE and the driver's error from a database refusal", async () => {
    const denied = Object.assign(new Error("permission denied for table grammy_sessions"), { code: "42501" });
    const storage = new PostgresStorage({ client: { query: () => Promise.reject(denied) } });
    const error = await failure(storage.read("k"));
    expect(error.code).toBe("42501");
    expect(error.cause).toBe(denied);
    expect(error.message).toMatch(/GRANT SELECT, INSERT, UPDATE, DELETE/);
  });
});

describe("options", () => {
  it.each([
    ["no client", {}],
    ["a string", { client: "postgres://x" }],
    ["null", { client: null }],
  ])("refuses %s as client, naming what it accepts", (_label, options) => {
    expect(() => new PostgresStorage(options as never)).toThrow(
      /pg or Neon Pool or Client, neon\(\), a postgres.js sql, PGlite/,
    );
  });
  it("refuses a codec without parse", () => {
    expect(
      () => new PostgresStorage({ client: { query: async () => [] }, codec: { stringify: JSON.stringify } as never }),
    ).toThrow(/codec must have/);
  });
  it("refuses a key builder of the wrong shape", () => {
    expect(() => new PostgresStorage({ client: { query: async () => [] }, keyBuilder: "bot" as never })).toThrow(
      /keyBuilder must be/,
    );
  });
});
