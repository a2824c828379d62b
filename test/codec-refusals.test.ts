import superjson from "superjson";
import { describe, expect, it } from "vitest";
import { PostgresStorage, PostgresStorageError, jsonWithDates } from "../src/index.js";
import { useFixture } from "./support/fixture.js";

// What the default codec refuses is refused before any SQL: the stored row stays exactly as it was.

describe("the default codec on a real table", () => {
  const db = useFixture();
  const row = (table: string) => db.admin(`SELECT key, value::text AS value, updated_at FROM "${table}" ORDER BY key`);
  const failure = (attempt: Promise<unknown>) =>
    attempt.then(
      () => new Error("it was accepted"),
      (error: unknown) => error,
    );

  it("refuses a Date, naming value.d and jsonWithDates, and leaves the stored row as it was", async () => {
    const table = db.table("refuse_date");
    const storage = new PostgresStorage<{ d: unknown }>({ client: db.pool, tableName: table });
    await storage.write("k", { d: "2024-01-01" });
    const before = await row(table);

    const error = await failure(storage.write("k", { d: new Date() }));
    expect(error).toBeInstanceOf(PostgresStorageError);
    const { message } = error as Error;
    expect(message).toMatch(
      /^nothing was written: the value for key "k" cannot be encoded \(value\.d is a Date, which JSON stores as a string/,
    );
    expect(message).toMatch(/jsonWithDates/);
    // The refusal names its codec; the wrapper adds no second, generic advice.
    expect(message).not.toMatch(/store more types/);
    expect(await row(table)).toStrictEqual(before);
    expect(await storage.read("k")).toStrictEqual({ d: "2024-01-01" });
  });

  it("stores the same Date with jsonWithDates", async () => {
    const storage = new PostgresStorage<{ d: Date }>({
      client: db.pool,
      tableName: db.table("dates_ok"),
      codec: jsonWithDates,
    });
    const d = new Date("2024-05-06T07:08:09.010Z");
    await storage.write("k", { d });
    expect(await storage.read("k")).toStrictEqual({ d });
  });

  it("refuses an update() patch with a Map, which used to be merged in as {}, and leaves the row as it was", async () => {
    const table = db.table("refuse_map_patch");
    const storage = new PostgresStorage<Record<string, unknown>>({ client: db.pool, tableName: table });
    await storage.write("k", { m: { kept: true }, n: 1 });
    const before = await row(table);

    const error = await failure(storage.update("k", { m: new Map([["a", 1]]) }));
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect((error as Error).message).toMatch(
      /cannot be encoded \(value\.m is a Map, which JSON stores as \{\}; use superjson or devalue/,
    );
    expect(await row(table)).toStrictEqual(before);
    expect(await storage.read("k")).toStrictEqual({ m: { kept: true }, n: 1 });
  });

  it("refuses a write with a Map nested in an array, naming its path", async () => {
    const table = db.table("refuse_map_write");
    const storage = new PostgresStorage<unknown>({ client: db.pool, tableName: table });
    await storage.write("k", { cart: { items: [] } });
    const before = await row(table);
    await expect(storage.write("k", { cart: { items: [1, 2, 3, new Map()] } })).rejects.toThrow(
      /value\.cart\.items\[3\] is a Map/,
    );
    expect(await row(table)).toStrictEqual(before);
  });

  it("stores a Map with superjson", async () => {
    const storage = new PostgresStorage<{ m: Map<string, number> }>({
      client: db.pool,
      tableName: db.table("superjson_map"),
      codec: superjson,
    });
    const value = {
      m: new Map([
        ["a", 1],
        ["b", 2],
      ]),
    };
    await storage.write("k", value);
    expect(await storage.read("k")).toStrictEqual(value);
  });
});
