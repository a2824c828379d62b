import type { StandardIssue } from "./schema.ts";

/** The storage operations, as errors name them. */
export type Operation = "read" | "write" | "update" | "delete" | "has" | "readAll" | "prune" | "create table";

/** Where an error happened and what is known of its effect; every field is optional. */
export interface ErrorDetails {
  /** The SQLSTATE, when the database reported one. */
  readonly code?: string | undefined;
  /** The underlying error. */
  readonly cause?: unknown;
  /** The storage operation that failed. */
  readonly operation?: Operation | undefined;
  /** The grammY session key the operation was given. */
  readonly key?: string | undefined;
  /** The storage's table name as it was given. */
  readonly table?: string | undefined;
  /** Whether the failed write may have taken effect; defaults to `false`. */
  readonly inDoubt?: boolean | undefined;
}

/**
 * Every error this library throws. When PostgreSQL refused a statement, `code`
 * holds its SQLSTATE (for example `"42501"` for a missing privilege) and
 * `cause` the driver's original error, so nothing the driver said is lost.
 * An error of a storage operation says which (`operation`, `key`, `table`),
 * and `inDoubt` tells a write that may have taken effect from one that did not.
 */
export class PostgresStorageError extends Error {
  /** The five-character SQLSTATE when the database reported one, otherwise `undefined`. */
  readonly code: string | undefined;
  /** The storage operation that failed; `undefined` outside one (an option refused, say). */
  readonly operation: Operation | undefined;
  /** The grammY session key the operation was given, when it takes one. */
  readonly key: string | undefined;
  /** The storage's table name as it was given (`tableName`), when an operation failed. */
  readonly table: string | undefined;
  /**
   * `true` when a write (`write`, `update`, `delete`, `prune`) failed after its
   * statement may have reached the database: the connection broke with no
   * answer, so it may have taken effect. Read the key to see. `false` when it
   * certainly did not, or for a read.
   */
  readonly inDoubt: boolean;

  /**
   * Makes an error with a message for people, and what is known of where it happened.
   *
   * @param message what went wrong and what to do about it
   * @param details the SQLSTATE, the underlying error, the operation, key and table, and whether it is in doubt
   */
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, "cause" in details ? { cause: details.cause } : undefined);
    this.name = "PostgresStorageError";
    this.code = details.code;
    this.operation = details.operation;
    this.key = details.key;
    this.table = details.table;
    this.inDoubt = details.inDoubt ?? false;
  }
}

/**
 * An option (or argument) was refused before anything was sent to the
 * database: fix the code that passes it. Database errors are never of this class.
 */
export class StorageOptionError extends PostgresStorageError {
  /** The option or argument refused: `"tableName"`, `"keyBuilder"`, `"retry"`, `"client"`, … */
  readonly option: string;

  /**
   * Makes the error for an option or argument that was refused.
   *
   * @param option the option's name
   * @param message what is wrong with it and what to pass instead
   */
  constructor(option: string, message: string) {
    super(message);
    this.name = "StorageOptionError";
    this.option = option;
  }
}

/**
 * A session value failed the storage's schema: on read (with
 * `onInvalid: "throw"`), on write, or as the result of `update()`. Nothing
 * invalid was written.
 */
export class StorageValidationError extends PostgresStorageError {
  /** The grammY session key whose value failed. */
  declare readonly key: string;
  /** What the schema found wrong, as the schema library reported it. */
  readonly issues: ReadonlyArray<StandardIssue>;

  /**
   * Makes the error for a value that failed the schema under a key.
   *
   * @param message what failed and what was done about it
   * @param key the grammY session key
   * @param issues the schema's issues
   */
  constructor(message: string, key: string, issues: ReadonlyArray<StandardIssue>) {
    super(message, { key });
    this.name = "StorageValidationError";
    this.issues = issues;
  }
}

/**
 * A pg-style Client that cannot run a statement; its message says what to do.
 * The storage's error says which operation failed and passes this on as its cause.
 */
export class ClientStateError extends Error {
  override readonly name = "ClientStateError";
}

/** Where an operation ran: what the storage knows when a statement fails. */
export interface FailureContext {
  readonly operation: Operation;
  /** The grammY key, when the operation had one. */
  readonly key?: string | undefined;
  /** The table name as the user gave it. */
  readonly tableName: string;
  /** The same, quoted for SQL. */
  readonly table: string;
  /** The table's schema, quoted, when the name has one. */
  readonly schema?: string | undefined;
  /**
   * The statement that failed, when the operation runs more than one: creating
   * a table in a missing schema runs `CREATE SCHEMA` before `CREATE TABLE`.
   */
  readonly statement?: string | undefined;
  /** Whether a try may have taken effect (see {@link PostgresStorageError.inDoubt}). */
  readonly inDoubt?: boolean | undefined;
}

/**
 * Explains a driver's error as a PostgresStorageError that keeps its SQLSTATE
 * and the original as `cause`, names the operation, and says what to do about
 * it. An error that is already ours gets the operation's details it lacks.
 */
export function explainFailure(context: FailureContext, error: unknown): PostgresStorageError {
  const { operation, key, tableName, table, inDoubt = false } = context;
  if (error instanceof PostgresStorageError) return inOperation(error, operation, key, tableName);
  const code = sqlState(error);
  const target = key === undefined ? `table ${table}` : `key ${showKey(key)} in table ${table}`;
  const hint =
    error instanceof ClientStateError
      ? "" // its message says what to do
      : operation === "update" && inDoubt
        ? UPDATE_IN_DOUBT
        : hintFor(code, context);
  return new PostgresStorageError(
    `${operation} of ${target} failed: ${describe(error)}${code ? ` (SQLSTATE ${code})` : ""}${hint ? `. ${hint}` : ""}`,
    { code, cause: error, operation, key, table: tableName, inDoubt },
  );
}

/**
 * Fills in the operation, key and table of an error of ours raised inside an
 * operation (a value the codec or schema refused, say), where they are not set yet.
 */
export function inOperation<E>(error: E, operation: Operation, key: string | undefined, table: string): E {
  if (error instanceof PostgresStorageError && error.operation === undefined) {
    // The fields are read-only to users; this is the one place that completes them.
    Object.assign(error, { operation, key: error.key ?? key, table });
  }
  return error;
}

const UPDATE_IN_DOUBT =
  "The connection broke after update() was sent, so it may have taken effect and was not retried; read the key to see";

function hintFor(
  code: string | undefined,
  { operation, tableName, table, schema = "public", statement }: FailureContext,
): string {
  const migrations = `createTableSql(${JSON.stringify(tableName)})`;
  switch (code) {
    case undefined:
      return "Check the connection string, and that the client is connected and not ended";
    case "42P01":
      return `Run ${migrations} in your migrations, or storage.createTable()`;
    case "42501":
      if (operation !== "create table") return `GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} to this role`;
      // Only run when the table's CREATE TABLE found no such schema: the role may not create schemas.
      if (statement?.startsWith("CREATE SCHEMA")) {
        return (
          `Schema ${schema} does not exist and this role may not create schemas: create it first ` +
          `(CREATE SCHEMA ${schema}; GRANT USAGE, CREATE ON SCHEMA ${schema} to this role), ` +
          `or GRANT CREATE ON DATABASE to this role, or run ${migrations} as the owner and pass createTable: false`
        );
      }
      return `GRANT CREATE ON SCHEMA ${schema} to this role, or run ${migrations} as the owner and pass createTable: false`;
    case "42P10":
    case "42703":
      return `The table differs from ${migrations}`;
    case "22P02":
      return "The codec's output must be JSON";
    case "22P05":
      return "update() merges as jsonb, which cannot hold U+0000; use write()";
    case "25006":
      return "Connected to a read-only server: a standby, or a primary demoted by a failover; point the connection at the primary";
    case "57P03":
      return "The server is starting up, shutting down, or a standby not accepting connections; if a failover is under way, point the connection at the new primary";
  }
  return "";
}

// Five characters with a digit: Node's error codes (EPIPE, EPERM…) are letters only.
const SQLSTATE = /^(?=.*\d)[0-9A-Z]{5}$/;

/**
 * The SQLSTATE a driver attached to its error, if it attached one: in `code`,
 * or, where `code` is the driver's own (Bun's `ERR_POSTGRES_SERVER_ERROR`), in
 * `errno` as a string (Node's errno is a number, such as -111).
 */
export function sqlState(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const { code, errno } = error as { code?: unknown; errno?: unknown };
  for (const state of [code, errno]) if (typeof state === "string" && SQLSTATE.test(state)) return state;
  return undefined;
}

/** A key as error messages show it: quoted, and cut short when long. */
export function showKey(key: string): string {
  return JSON.stringify(key.length > 60 ? `${key.slice(0, 60)}…` : key);
}

/** The driver's own words, whatever shape its error has. */
export function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return error.errors.map(describe).join("; ");
  }
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
