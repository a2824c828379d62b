import { describe, expect, it } from "vitest";
import {
  ClientStateError,
  PostgresStorageError,
  StatementFailure,
  StorageConflictError,
  StorageOptionError,
  StorageValidationError,
  describe as describeError,
  showKey,
} from "../../src/errors.js";
import { sqlState } from "../../src/driver/error-reading.js";
import { explainFailure } from "../../src/failure.js";

// The error classes and the helpers that turn a driver's error into words, without a database.
describe("error classes", () => {
  it("name themselves, so that logs and String(error) say which class it is", () => {
    const cases: [Error, string][] = [
      [new PostgresStorageError("failed"), "PostgresStorageError"],
      [new StorageOptionError("retry", "refused"), "StorageOptionError"],
      [new StorageValidationError("invalid", "k", []), "StorageValidationError"],
      [new ClientStateError("call connect() first"), "ClientStateError"],
    ];
    for (const [error, name] of cases) {
      expect(error.name).toBe(name);
      expect(String(error)).toBe(`${name}: ${error.message}`);
      expect(error.stack).toMatch(new RegExp(`^${name}: `));
    }
  });

  it("are not in doubt unless told so", () => {
    expect(new PostgresStorageError("failed").inDoubt).toBe(false);
    expect(new PostgresStorageError("failed", { operation: "write" }).inDoubt).toBe(false);
    expect(new PostgresStorageError("failed", { inDoubt: true }).inDoubt).toBe(true);
    expect(new StorageOptionError("retry", "refused").inDoubt).toBe(false);
  });

  it("keep the option refused and the message", () => {
    const error = new StorageOptionError("tableName", "tableName must be a string");
    expect({ option: error.option, message: error.message }).toStrictEqual({
      option: "tableName",
      message: "tableName must be a string",
    });
    expect(error).toBeInstanceOf(PostgresStorageError);
  });
});

describe("StorageConflictError", () => {
  it("names the fields both sides changed, the whole value, or a merge the schema refused; written or in doubt", () => {
    const said = (fields: string[], inDoubt?: boolean) => {
      const error = new StorageConflictError("k", fields, inDoubt);
      return [error.message, error.inDoubt, error.key, error.fields, error.operation, error.name];
    };
    const tail = 'key "k"; read it again and retry, or choose another onConflict';
    expect(said(["s", "t"])).toStrictEqual([
      `nothing was written: another writer changed "s", "t" since it was read, ${tail}`,
      false,
      "k",
      ["s", "t"],
      undefined, // the storage fills in the operation and table, as for every error of ours (hints.test.ts)
      "StorageConflictError",
    ]);
    expect(said([""])[0]).toBe(
      `nothing was written: another writer changed (or deleted) the value since it was read, ${tail}`,
    );
    expect(said([])[0]).toBe(`nothing was written: the merge with another writer's change fails the schema, ${tail}`);
    expect(said(["s"], true).slice(0, 2)).toStrictEqual([
      `a try whose answer was lost may have been written before the other writer's change, and then another writer changed "s" since it was read, ${tail}`,
      true,
    ]);
    expect(new StorageConflictError("k", ["s"])).toBeInstanceOf(PostgresStorageError);
  });
});

describe("StatementFailure", () => {
  it("carries the driver's error, its SQLSTATE, whether a try may have applied and the DDL, in the driver's words", () => {
    const cause = Object.assign(new Error("permission denied for schema app"), { code: "42501" });
    const failure = new StatementFailure(cause, "42501", false, "CREATE TABLE x");
    expect([
      failure.message,
      failure.name,
      failure.cause,
      failure.code,
      failure.inDoubt,
      failure.statement,
    ]).toStrictEqual(["permission denied for schema app", "StatementFailure", cause, "42501", false, "CREATE TABLE x"]);
    expect(new StatementFailure("socket gone", undefined, true).message).toBe("socket gone");
    expect(new StatementFailure(cause, "42501", false)).not.toBeInstanceOf(PostgresStorageError);
  });
});

describe("sqlState", () => {
  it("is undefined for what is no object: nothing to read a code from", () => {
    for (const value of [null, undefined, "42P01", 42601, true]) expect(sqlState(value)).toBeUndefined();
    // A function is no error object either, whatever it carries.
    expect(sqlState(Object.assign(() => undefined, { code: "42P01" }))).toBeUndefined();
  });

  it("takes the SQLSTATE from code, else from errno (Bun), and code first", () => {
    expect(sqlState({ code: "42P01" })).toBe("42P01");
    expect(sqlState({ errno: "42P01" })).toBe("42P01");
    expect(sqlState({ code: "ERR_POSTGRES_SERVER_ERROR", errno: "40001" })).toBe("40001");
    expect(sqlState({ code: "40001", errno: "42P01" })).toBe("40001");
  });

  it("takes only strings: a number is never a SQLSTATE, even with five digits", () => {
    expect(sqlState({ code: 40001 })).toBeUndefined();
    expect(sqlState({ errno: 40001 })).toBeUndefined();
  });

  it.each([
    ["a prefix", "XX42P01"],
    ["a suffix", "42P01X"],
    ["both", "E42P01E"],
    ["four characters", "4200"],
    ["no digit (Node's codes)", "EPIPE"],
    ["lower case", "42p01"],
  ])("takes no code with %s for a SQLSTATE", (_label, code) => {
    expect(sqlState({ code })).toBeUndefined();
    expect(sqlState({ code: "ERR_POSTGRES_SERVER_ERROR", errno: code })).toBeUndefined();
  });
});

describe("showKey", () => {
  it("quotes a key as JSON", () => {
    expect(showKey('say "hi"\n')).toBe('"say \\"hi\\"\\n"');
  });

  it("shows keys of up to 60 characters whole, and cuts longer ones after 60", () => {
    const sixty = "k".repeat(59) + "z";
    expect(showKey(sixty)).toBe(`"${sixty}"`);
    expect(showKey(`${sixty}!`)).toBe(`"${sixty}…"`);
    expect(showKey(`${sixty}${"!".repeat(1000)}`)).toBe(`"${sixty}…"`);
  });
});

describe("describe", () => {
  it("is an error's message, or its name when the message is empty", () => {
    expect(describeError(new Error("connection refused"))).toBe("connection refused");
    expect(describeError(new TypeError(""))).toBe("TypeError");
  });

  it("is each error of an AggregateError (what Node's connect to several addresses throws), joined", () => {
    const refused = new AggregateError(
      [new Error("connect ECONNREFUSED ::1:5432"), new Error("connect ECONNREFUSED 127.0.0.1:5432")],
      "",
    );
    expect(describeError(refused)).toBe("connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432");
    const nested = new AggregateError([new AggregateError([new Error("a"), new Error("b")]), "c"], "outer");
    expect(describeError(nested)).toBe("a; b; c");
  });

  it("is an empty AggregateError's own message", () => {
    expect(describeError(new AggregateError([], "all failed"))).toBe("all failed");
    expect(describeError(new AggregateError([], ""))).toBe("AggregateError");
  });

  it("is anything else as a string", () => {
    expect(describeError("boom")).toBe("boom");
    expect(describeError(42)).toBe("42");
    expect(describeError(null)).toBe("null");
    expect(describeError({ message: "not an Error" })).toBe("[object Object]");
  });
});

describe("explainFailure, in doubt", () => {
  const at = { tableName: "sessions", table: '"sessions"', key: "k" };
  const reset = () => Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });

  it("says that a write in doubt may have taken effect, and that it was not retried only for update()", () => {
    const error = explainFailure({ ...at, operation: "write", inDoubt: true }, reset());
    expect(error.inDoubt).toBe(true);
    expect(error.message).toBe(
      'write of key "k" in table "sessions" failed: socket hang up. No answer came from the server, so it may have taken effect; read the key to see',
    );
    expect(explainFailure({ ...at, operation: "update", inDoubt: true }, reset()).message).toMatch(
      /\. No answer came from the server, so it may have taken effect and was not retried; read the key to see$/,
    );
    // Doubt from an earlier try, and this one's own advice.
    const missing = explainFailure({ ...at, operation: "delete", inDoubt: true }, { code: "42P01", message: "x" });
    expect(missing.message).toMatch(
      /\. Run createTableSql\("sessions"\) in your migrations, or storage.createTable\(\)\. It may have taken effect; read the key to see$/,
    );
    // Doubt with a SQLSTATE that has no advice: a connection the server ended with the statement.
    const terminated = Object.assign(new Error("terminating connection due to administrator command"), {
      code: "57P01",
    });
    expect(explainFailure({ ...at, operation: "update", inDoubt: true }, terminated).message).toBe(
      'update of key "k" in table "sessions" failed: terminating connection due to administrator command (SQLSTATE 57P01). It may have taken effect and was not retried; read the key to see',
    );
  });

  it("an update that is not in doubt gets the usual hint", () => {
    const error = explainFailure({ ...at, operation: "update" }, reset());
    expect(error.inDoubt).toBe(false);
    expect(error.message).toMatch(/\. Check the connection string/);
  });

  it("cuts a long key short in the message, and keeps it whole on the error", () => {
    const key = "k".repeat(100);
    const error = explainFailure({ ...at, key, operation: "read" }, reset());
    expect(error.message).toContain(`read of key "${"k".repeat(60)}…" in table`);
    expect(error.key).toBe(key);
  });
});
