import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStorage, PostgresStorageError, createTableSql } from "../src/index.js";
import { adminPool, databaseUrl, tableExists, uniqueTable } from "./support/clients.js";

describe("table names", () => {
  const { admin, close } = adminPool();
  let client: pg.Pool;
  // Every name starts with the tests' prefix (gps_test_), so a run on a database of your own touches nothing else.
  const base = uniqueTable("names");
  const schema = `${base}_app`;
  const mixedCase = `${base}_My-Sessions`;
  const lowerCase = `${base}_my-sessions`;
  // A reserved word as the table, inside the test's own schema.
  const reserved = `${schema}.select`;
  const victim = `${base}_victim`;

  beforeAll(() => {
    client = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
  });
  afterAll(async () => {
    await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    for (const name of [mixedCase, lowerCase, victim]) await admin(`DROP TABLE IF EXISTS "${name}"`);
    await client.end();
    await close();
  });

  it("uses a mixed-case name with a hyphen exactly as written", async () => {
    const upper = new PostgresStorage({ client, tableName: mixedCase });
    const lower = new PostgresStorage({ client, tableName: lowerCase });
    await upper.write("k", "upper");
    await lower.write("k", "lower");
    expect(await upper.read("k")).toBe("upper");
    expect(await lower.read("k")).toBe("lower");
    expect(await tableExists(admin, mixedCase)).toBe(true);
  });

  it("creates schema and table for schema.table, lazily", async () => {
    const store = new PostgresStorage({ client, tableName: `${schema}.sessions` });
    expect(await store.read("k")).toBeUndefined();
    expect(await tableExists(admin, `${schema}.sessions`)).toBe(false);
    await store.write("k", { in: "schema" });
    expect(await tableExists(admin, `${schema}.sessions`)).toBe(true);
    expect(await store.read("k")).toStrictEqual({ in: "schema" });
  });

  it("accepts a reserved word, because every name is quoted", async () => {
    const store = new PostgresStorage({ client, tableName: reserved });
    await store.write("k", 1);
    expect(await store.read("k")).toBe(1);
  });

  it.each([
    ["an empty name", "", /non-empty string/],
    ["a double quote", 'my"table', /not allowed/],
    ["a closing quote and SQL", `x"; DROP TABLE "${victim}"; --`, /not allowed/],
    ["a space", "my table", /not allowed/],
    ["two dots", "a.b.c", /more than one dot/],
    ["an empty part", "app.", /not allowed/],
    ["a leading digit", "1sessions", /not allowed/],
    ["a semicolon", "sessions;", /not allowed/],
    ["64 characters", "s".repeat(64), /too long/],
  ])("refuses %s with a clear error before any SQL runs", async (_label, tableName, message) => {
    await admin(`CREATE TABLE IF NOT EXISTS "${victim}" (id int)`);
    expect(() => new PostgresStorage({ client, tableName })).toThrow(PostgresStorageError);
    expect(() => new PostgresStorage({ client, tableName })).toThrow(message);
    expect(() => createTableSql(tableName)).toThrow(message);
    expect(await tableExists(admin, victim)).toBe(true);
  });

  it("refuses a table name that is not a string", () => {
    expect(() => new PostgresStorage({ client, tableName: 5 as unknown as string })).toThrow(/non-empty string/);
  });

  it("quotes the name in the migration SQL", () => {
    expect(createTableSql()).toMatch(/^CREATE TABLE IF NOT EXISTS "grammy_sessions" \(/);
    expect(createTableSql("app.My-Sessions")).toMatch(
      /^CREATE SCHEMA IF NOT EXISTS "app";\nCREATE TABLE IF NOT EXISTS "app"\."My-Sessions" \(/,
    );
  });
});
