import { describe, expect, it } from "vitest";
import {
  ClientStateError,
  PostgresStorageError,
  StatementFailure,
  StorageConflictError,
  StorageValidationError,
} from "../../src/errors.js";
import { afterLostTry, explainFailure, inOperation, type FailureContext } from "../../src/failure.js";

// What an error says to do, for each SQLSTATE the storage explains, without a database.
const table: Omit<FailureContext, "operation"> = {
  tableName: "app.sessions",
  table: '"app"."sessions"',
};
const driverError = (code: string | undefined, message = "refused") =>
  Object.assign(new Error(message), code === undefined ? {} : { code });

describe("explainFailure", () => {
  it.each([
    ["42P01", "read", undefined, 'Run createTableSql("app.sessions") in your migrations, or storage.createTable()'],
    ["42501", "write", undefined, 'GRANT SELECT, INSERT, UPDATE, DELETE ON "app"."sessions" to this role'],
    [
      "42501",
      "createTable",
      'CREATE TABLE IF NOT EXISTS "app"."sessions" (…)',
      'GRANT CREATE ON SCHEMA "app" to this role, or run createTableSql("app.sessions") as the owner and pass createTable: false',
    ],
    [
      "42501",
      "createTable",
      'CREATE SCHEMA IF NOT EXISTS "app"',
      'Schema "app" does not exist and this role may not create schemas: create it first (CREATE SCHEMA "app"; GRANT USAGE, CREATE ON SCHEMA "app" to this role), or GRANT CREATE ON DATABASE to this role',
    ],
    ["42P10", "write", undefined, 'The table differs from createTableSql("app.sessions")'],
    ["42703", "read", undefined, 'The table differs from createTableSql("app.sessions")'],
    ["22P02", "write", undefined, "The codec's output must be JSON"],
    [
      "22P05",
      "update",
      undefined,
      "PostgreSQL's JSON functions cannot read U+0000 in a string; update() merges such values in JavaScript, and write() stores them",
    ],
    [
      "57014",
      "write",
      undefined,
      "The server cancelled the statement (its statement_timeout, or a cancel request) and rolled it back; a row lock held by another transaction, or a busy server, can keep a statement waiting that long",
    ],
    [
      "55P03",
      "delete",
      undefined,
      "The server stopped waiting for a lock (its lock_timeout) and rolled the statement back; another transaction holds the row",
    ],
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
    expect(explainFailure({ ...table, operation: "read" }, driverError("57P01", "terminating")).message).toBe(
      'read of table "app"."sessions" failed: terminating (SQLSTATE 57P01)',
    );
  });

  it("without a schema, grants CREATE on public", () => {
    const error = explainFailure({ operation: "createTable", tableName: "s", table: '"s"' }, driverError("42501"));
    expect(error.message).toContain("GRANT CREATE ON SCHEMA public to this role");
  });

  it("an update in doubt says so, instead of the hint, and carries the flag", () => {
    const error = explainFailure(
      { ...table, operation: "update", key: "k", inDoubt: true },
      driverError("ECONNRESET", "socket hang up"),
    );
    expect(error.message).toMatch(
      /failed: socket hang up\. No answer came from the server, so it may have taken effect and was not retried; read the key to see$/,
    );
    expect(error.inDoubt).toBe(true);
    expect(
      explainFailure({ ...table, operation: "write", key: "k", inDoubt: true }, driverError(undefined)).inDoubt,
    ).toBe(true);
    expect(explainFailure({ ...table, operation: "write", key: "k" }, driverError(undefined)).inDoubt).toBe(false);
  });

  it("passes a client-state error's own advice on, saying only that an earlier try may have taken effect", () => {
    const error = explainFailure(
      { ...table, operation: "read", key: "k" },
      new ClientStateError("call await client.connect() first"),
    );
    expect(error.message).toBe('read of key "k" in table "app"."sessions" failed: call await client.connect() first');
    const retried = explainFailure(
      { ...table, operation: "write", key: "k", inDoubt: true },
      new ClientStateError("connect a new one, or pass a Pool"),
    );
    expect({ message: retried.message, inDoubt: retried.inDoubt }).toStrictEqual({
      message:
        'write of key "k" in table "app"."sessions" failed: connect a new one, or pass a Pool. ' +
        "An earlier try may have taken effect; read the key to see",
      inDoubt: true,
    });
  });

  it("a prune() in doubt says that running it again is safe: it has no key to read", () => {
    const error = explainFailure({ ...table, operation: "prune", inDoubt: true }, driverError("ECONNRESET", "reset"));
    expect(error.message).toBe(
      'prune of table "app"."sessions" failed: reset. No answer came from the server, so it may have taken effect; running it again is safe',
    );
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

    // A conflict names its key itself; the operation and table are filled in.
    const conflict = new StorageConflictError("k", ["s"]);
    explainFailure({ ...table, operation: "write", key: "k" }, conflict);
    expect({ operation: conflict.operation, key: conflict.key, table: conflict.table }).toStrictEqual({
      operation: "write",
      key: "k",
      table: "app.sessions",
    });
  });

  it("explains an error of ours raised reading the answer of a write that may have run, as in doubt", () => {
    const unread = new PostgresStorageError("client.query() answered a change without its rowCount");
    const error = explainFailure({ ...table, operation: "write", key: "k", inDoubt: true }, unread);
    expect(error).not.toBe(unread);
    expect({ cause: error.cause, inDoubt: error.inDoubt, code: error.code }).toStrictEqual({
      cause: unread,
      inDoubt: true,
      code: undefined,
    });
    expect(error.message).toBe(
      'write of key "k" in table "app"."sessions" failed: client.query() answered a change without its rowCount. ' +
        "Its answer could not be read, so it may have taken effect; read the key to see",
    );
  });

  describe("a client that gave up on a statement", () => {
    const timeout = new Error("Query read timeout");
    const stopped = "The client stopped waiting for the answer (a client-side timeout, such as pg's query_timeout)";
    const aborted = Object.assign(new Error("Error connecting to database: AbortError: This operation was aborted"), {
      name: "NeonDbError",
      sourceError: new DOMException("This operation was aborted", "AbortError"),
    });

    it.each(["write", "update", "delete", "prune"] as const)(
      "a timed-out %s in doubt says it may still commit on the server, and not to check the connection string",
      (operation) => {
        const error = explainFailure({ ...table, operation, key: "k", inDoubt: true }, timeout);
        expect(error.message).toBe(
          `${operation} of key "k" in table "app"."sessions" failed: Query read timeout. ${stopped}, but the statement may still commit on the server: it may have taken effect and was not retried; read the key to see. The server's statement_timeout would cancel it and roll it back instead`,
        );
        expect(error.inDoubt).toBe(true);
      },
    );

    it("a timed-out read says it was not retried, and what the server's timeout does", () => {
      expect(explainFailure({ ...table, operation: "read", key: "k" }, timeout).message).toBe(
        `read of key "k" in table "app"."sessions" failed: Query read timeout. ${stopped}, and it was not retried; the server's statement_timeout cancels a statement on the server instead`,
      );
    });

    it("an aborted write in doubt says it may still take effect; an aborted read says it was aborted", () => {
      expect(explainFailure({ ...table, operation: "write", key: "k", inDoubt: true }, aborted).message).toMatch(
        /failed: Error connecting to database: AbortError: This operation was aborted\. It was aborted \(an AbortSignal, or a cancelled query\) after it may have reached the server, which runs it to the end: it may have taken effect and was not retried; read the key to see$/,
      );
      expect(explainFailure({ ...table, operation: "has", key: "k" }, aborted).message).toMatch(
        /\. It was aborted \(an AbortSignal, or a cancelled query\), and it was not retried$/,
      );
    });
  });
});

describe("afterLostTry", () => {
  it("makes every failure of ours in doubt, keeping its class, and passes others' errors and doubtful ones unchanged", () => {
    const refused = new StatementFailure(driverError("42501"), "42501", false);
    const failed = afterLostTry(refused) as StatementFailure;
    expect(failed).toBeInstanceOf(StatementFailure);
    expect({ cause: failed.cause, code: failed.code, inDoubt: failed.inDoubt }).toStrictEqual({
      cause: refused.cause,
      code: "42501",
      inDoubt: true,
    });
    const doubtful = new StatementFailure(driverError(undefined), undefined, true);
    expect(afterLostTry(doubtful)).toBe(doubtful);
    const invalid = new StorageValidationError('value for key "k" fails the schema: s: expected string', "k", []);
    expect(afterLostTry(invalid)).toBe(invalid);
    expect({ inDoubt: invalid.inDoubt, message: invalid.message }).toStrictEqual({
      inDoubt: true,
      message:
        'value for key "k" fails the schema: s: expected string. A try of this write whose answer was lost may have ' +
        "been stored before another writer's change replaced it",
    });
    const certain = new StorageConflictError("k", ["s"]);
    const conflict = afterLostTry(certain) as StorageConflictError;
    expect(conflict).toBeInstanceOf(StorageConflictError);
    expect({ fields: conflict.fields, inDoubt: conflict.inDoubt }).toStrictEqual({ fields: ["s"], inDoubt: true });
    // A conflict says it in its own words, and the certain one is left as it was.
    expect(conflict.message).toMatch(
      /^a try whose answer was lost may have been written before the other writer's change/,
    );
    expect({ inDoubt: certain.inDoubt, message: certain.message }).toMatchObject({
      inDoubt: false,
      message: expect.stringMatching(/^nothing was written:/),
    });
    const already = new PostgresStorageError("lost 100 times; may have been written", { inDoubt: true });
    expect(afterLostTry(already)).toBe(already);
    expect(already.message).toBe("lost 100 times; may have been written");
    // A refusal that says nothing was written no longer says so.
    const refusal = new StorageValidationError('nothing was written: the value for key "k" fails the schema', "k", []);
    expect((afterLostTry(refusal) as Error).message).toBe(
      'the value for key "k" fails the schema. A try of this write whose answer was lost may have been stored ' +
        "before another writer's change replaced it",
    );
    const users = new Error("the resolver threw");
    expect(afterLostTry(users)).toBe(users);
    const anothers = new PostgresStorageError("read failed", { operation: "read", key: "cfg" });
    expect(afterLostTry(anothers)).toBe(anothers);
    expect({ inDoubt: anothers.inDoubt, message: anothers.message }).toStrictEqual({
      inDoubt: false,
      message: "read failed",
    });
  });
});

describe("inOperation", () => {
  it.each([
    ["read", false],
    ["has", false],
    ["readAll", false],
    ["write", true],
    ["update", true],
    ["delete", true],
    ["prune", true],
  ] as const)(
    "a statement that may have run is in doubt only for an operation that writes: %s → %s",
    (operation, inDoubt) => {
      const failure = new StatementFailure(driverError("ECONNRESET", "reset"), undefined, true);
      const error = inOperation({ ...table, operation, key: "k" }, failure) as PostgresStorageError;
      expect({ operation: error.operation, inDoubt: error.inDoubt }).toStrictEqual({ operation, inDoubt });
    },
  );
});
