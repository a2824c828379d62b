import type { StandardIssue } from "./schema.ts";

/** The storage operations, as errors name them: the method's name (`readAll` for the three `readAll*`). */
export type Operation = "read" | "write" | "update" | "delete" | "has" | "readAll" | "prune" | "createTable";

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
   * answer, or the client stopped waiting (a timeout such as pg's
   * `query_timeout`) or aborted, while the server may still commit it, or its
   * answer came back in a shape this library could not read. Read the key to
   * see. `false` when it certainly did not take effect (the server
   * answered with an error, which rolled it back, its `statement_timeout`
   * included; or it was never sent), or for a read.
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
  /** The option or argument refused: `"tableName"`, `"keyBuilder"`, `"retry"`, `"client"`, `"codec"`, `"key"`, `"patch"`, … */
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
 * A write-back met another writer's change to a field it changed too, with
 * `onConflict: "throw"`. The row holds the other writer's value. Nothing was
 * written, unless `inDoubt`: a try of this write-back whose answer was lost
 * may have been stored before the other writer's change.
 */
export class StorageConflictError extends PostgresStorageError {
  /** The grammY session key. */
  declare readonly key: string;
  /** The top-level fields both changed; `[""]` for the whole value, `[]` when only the merge failed the schema. */
  readonly fields: readonly string[];

  /**
   * Makes the error for a conflicting write-back.
   *
   * @param key the grammY session key
   * @param fields the fields both sides changed
   * @param inDoubt whether a try of the write-back whose answer was lost may have been stored before
   */
  constructor(key: string, fields: readonly string[], inDoubt = false) {
    const what =
      fields.length === 0
        ? "the merge with another writer's change fails the schema"
        : fields.length === 1 && fields[0] === ""
          ? "another writer changed (or deleted) the value since it was read"
          : `another writer changed ${fields.map((field) => JSON.stringify(field)).join(", ")} since it was read`;
    const written = inDoubt
      ? "a try whose answer was lost may have been written before the other writer's change, and then"
      : "nothing was written:";
    super(`${written} ${what}, key ${showKey(key)}; read it again and retry, or choose another onConflict`, {
      key,
      inDoubt,
    });
    this.name = "StorageConflictError";
    this.fields = fields;
  }
}

/**
 * A pg-style Client that cannot run a statement; its message says what to do.
 * The storage's error says which operation failed and passes this on as its cause.
 */
export class ClientStateError extends Error {
  override readonly name = "ClientStateError";
}

/**
 * A statement that failed for good, as the driver hands it to the storage,
 * which explains it (`failure.ts`) with the operation it belongs to.
 */
export class StatementFailure extends Error {
  override readonly name = "StatementFailure";

  /**
   * @param cause the driver's error of the last try
   * @param code its SQLSTATE, if it has one
   * @param inDoubt whether any try may have taken effect
   * @param statement the statement that failed, where the operation runs more than one (creating a table)
   */
  constructor(
    override readonly cause: unknown,
    readonly code: string | undefined,
    readonly inDoubt: boolean,
    readonly statement?: string,
  ) {
    super(describe(cause));
  }
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
