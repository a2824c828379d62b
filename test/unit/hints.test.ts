import { describe, expect, it } from "vitest";
import {
  ClientStateError,
  PostgresStorageError,
  StorageValidationError,
  explainFailure,
  type FailureContext,
} from "../../src/errors.js";

// What an error says to do, for each SQLSTATE the storage explains, without a database.
const table: Omit<FailureContext, "operation"> = {
  tableName: "app.sessions",
  table: '"app"."sessions"',
  schema: '"app"',
};
const driverError = (code: string | undefined, message = "refused") =>
  Object.assign(new Error(message), code === undefined ? {} : { code });

describe("explainFailure", () => {
  it.each([
    ["42P01", "read", undefined, 'Run createTableSql("app.sessions") in your migrations, or storage.createTable()'],
    ["42501", "write", undefined, 'GRANT SELECT, INSERT, UPDATE, DELETE ON "app"."sessions" to this role'],
    [
      "42501",
      "create table",
      'CREATE TABLE IF NOT EXISTS "app"."sessions" (…)',
      'GRANT CREATE ON SCHEMA "app" to this role, or run createTableSql("app.sessions") as the owner and pass createTable: false',
    ],
    [
      "42501",
      "create table",
      'CREATE SCHEMA IF NOT EXISTS "app"',
      'Schema "app" does not exist and this role may not create schemas: create it first (CREATE SCHEMA "app"; GRANT USAGE, CREATE ON SCHEMA "app" to this role), or GRANT CREATE ON DATABASE to this role',
    ],
    ["42P10", "write", undefined, 'The table differs from createTableSql("app.sessions")'],
    ["42703", "read", undefined, 'The table differs from createTableSql("app.sessions")'],
    ["22P02", "write", undefined, "The codec's output must be JSON"],
    ["22P05", "update", undefined, "update() merges as jsonb, which cannot hold U+0000; use write()"],
    [
      "25006",
      "write",
      undefined,
      "Connected to a read-only server: a standby, or a primary demoted by a failover; point the connection at the primary",
    ],
    [
      "57P03",
      "read",
      undefined,
      "The server is starting up, shutting down, or a standby not accepting connections; if a failover is under way, point the connection at the new primary",
    ],
    [undefined, "read", undefined, "Check the connection string, and that the client is connected and not ended"],
  ] as const)("%s in %s: %s", (code, operation, statement, hint) => {
    const cause = driverError(code);
    const error = explainFailure({ ...table, operation, key: "42", statement }, cause);
    expect(error.message).toContain(`${operation} of key "42" in table "app"."sessions" failed: refused`);
    expect(error.message).toContain(`. ${hint}`);
    expect({
      code: error.code,
      cause: error.cause,
      operation: error.operation,
      key: error.key,
      table: error.table,
    }).toStrictEqual({
      code,
      cause,
      operation,
      key: "42",
      table: "app.sessions",
    });
  });

  it("says nothing more for a SQLSTATE it has no advice for", () => {
    expect(explainFailure({ ...table, operation: "read" }, driverError("57014", "canceled")).message).toBe(
      'read of table "app"."sessions" failed: canceled (SQLSTATE 57014)',
    );
  });

  it("without a schema, grants CREATE on public", () => {
    const error = explainFailure({ operation: "create table", tableName: "s", table: '"s"' }, driverError("42501"));
    expect(error.message).toContain("GRANT CREATE ON SCHEMA public to this role");
  });

  it("an update in doubt says so, instead of the hint, and carries the flag", () => {
    const error = explainFailure(
      { ...table, operation: "update", key: "k", inDoubt: true },
      driverError("ECONNRESET", "socket hang up"),
    );
    expect(error.message).toMatch(/may have taken effect and was not retried; read the key to see$/);
    expect(error.inDoubt).toBe(true);
    expect(
      explainFailure({ ...table, operation: "write", key: "k", inDoubt: true }, driverError(undefined)).inDoubt,
    ).toBe(true);
    expect(explainFailure({ ...table, operation: "write", key: "k" }, driverError(undefined)).inDoubt).toBe(false);
  });

  it("passes a client-state error's own advice on, with no hint of its own", () => {
    const error = explainFailure(
      { ...table, operation: "read", key: "k" },
      new ClientStateError("call await client.connect() first"),
    );
    expect(error.message).toBe('read of key "k" in table "app"."sessions" failed: call await client.connect() first');
  });

  it("keeps an error of ours as it is, filling in only the operation, key and table it lacks", () => {
    const ours = new PostgresStorageError("nothing was written");
    expect(explainFailure({ ...table, operation: "write", key: "k" }, ours)).toBe(ours);
    expect({ operation: ours.operation, key: ours.key, table: ours.table }).toStrictEqual({
      operation: "write",
      key: "k",
      table: "app.sessions",
    });

    const invalid = new StorageValidationError("fails the schema", "grammy-key", []);
    explainFailure({ ...table, operation: "update", key: "other" }, invalid);
    expect({ operation: invalid.operation, key: invalid.key }).toStrictEqual({
      operation: "update",
      key: "grammy-key",
    });

    const done = new PostgresStorageError("x", { operation: "read", key: "a", table: "t" });
    explainFailure({ ...table, operation: "write", key: "b" }, done);
    expect({ operation: done.operation, key: done.key, table: done.table }).toStrictEqual({
      operation: "read",
      key: "a",
      table: "t",
    });
  });
});
