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
   * answer, or the client stopped waiting (a timeout such as pg's
   * `query_timeout`) or aborted, while the server may still commit it. Read the
   * key to see. `false` when it certainly did not take effect (the server
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
 * A write-back met another writer's change to a field it changed too, with
 * `onConflict: "throw"`. Nothing was written: the row holds the other
 * writer's value.
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
   */
  constructor(key: string, fields: readonly string[]) {
    const what =
      fields.length === 0
        ? "the merge with another writer's change fails the schema"
        : fields.length === 1 && fields[0] === ""
          ? "another writer changed (or deleted) the value since it was read"
          : `another writer changed ${fields.map((field) => JSON.stringify(field)).join(", ")} since it was read`;
    super(`nothing was written: ${what}, key ${showKey(key)}; read it again and retry, or choose another onConflict`, {
      key,
      operation: "write",
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

/** How a client gave up on a statement it may have sent: it stopped waiting ("timeout"), or was told to stop ("abort"). */
export type GaveUp = "timeout" | "abort";

/**
 * Whether the client gave up on the statement rather than failing: pg's
 * `query_timeout` ("Query read timeout", pg's forks in Neon's driver and
 * `@vercel/postgres` too), a fetch aborted by `AbortSignal.timeout()`
 * (TimeoutError) or by another signal (AbortError, which Neon's `neon()`
 * wraps as `sourceError`), a cancelled query of Bun's SQL. Nothing of this
 * stops a statement already sent: the server runs it to the end. A timeout
 * the server enforces (`statement_timeout`, 57014) is no such thing: the
 * server cancels the statement and rolls it back.
 */
export function clientGaveUp(error: unknown): GaveUp | undefined {
  let found: GaveUp | undefined;
  for (const node of errorChain(error)) {
    const { name, message, code } = node as Record<string, unknown>;
    if (name === "TimeoutError" || message === "Query read timeout") return "timeout";
    if (name === "AbortError" || code === "ERR_POSTGRES_QUERY_CANCELLED") found = "abort";
  }
  return found;
}

/**
 * The error objects of a driver's error, itself first, then what it wraps:
 * `cause`, Neon's `sourceError`, the `error` of a WebSocket's ErrorEvent
 * (Neon's Pool and Client reject with one when the socket cannot open) and
 * AggregateError's `errors`, four links deep at most.
 */
export function errorChain(error: unknown): object[] {
  const chain: object[] = [];
  const visit = (node: unknown, depth: number): void => {
    if (typeof node !== "object" || node === null || depth > 4) return;
    chain.push(node);
    const { cause, sourceError, error: inner, errors } = node as Record<string, unknown>;
    for (const next of [cause, sourceError, inner, ...(Array.isArray(errors) ? errors : [])]) visit(next, depth + 1);
  };
  visit(error, 0);
  return chain;
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
