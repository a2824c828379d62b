import type { StandardIssue } from "./schema.ts";

/**
 * Every error this library throws. When PostgreSQL refused a statement, `code`
 * holds its SQLSTATE (for example `"42501"` for a missing privilege) and
 * `cause` the driver's original error, so nothing the driver said is lost.
 */
export class PostgresStorageError extends Error {
  /** The five-character SQLSTATE when the database reported one, otherwise `undefined`. */
  readonly code: string | undefined;

  /**
   * Makes an error with a message for people, and the SQLSTATE and original
   * error when the database refused a statement.
   *
   * @param message what went wrong and what to do about it
   * @param options `code`: the SQLSTATE; `cause`: the underlying error
   */
  constructor(message: string, options: { code?: string | undefined; cause?: unknown } = {}) {
    super(message, "cause" in options ? { cause: options.cause } : undefined);
    this.name = "PostgresStorageError";
    this.code = options.code;
  }
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

/**
 * A session value failed the storage's schema: on read (with
 * `onInvalid: "throw"`), on write, or as the result of `update()`. Nothing
 * invalid was written.
 */
export class StorageValidationError extends PostgresStorageError {
  /** The grammY session key whose value failed. */
  readonly key: string;
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
    super(message);
    this.name = "StorageValidationError";
    this.key = key;
    this.issues = issues;
  }
}
