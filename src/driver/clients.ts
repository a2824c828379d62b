/**
 * What the storage needs of a database client, whatever its kind: the slices
 * of clients the user passes (typed here so that no driver is a dependency),
 * and the connection and error signs each kind's module gives the storage.
 */
import { PostgresStorageError } from "../errors.ts";

/** What the storage binds to a statement's placeholders: keys, encoded values, limits. */
export type QueryParameter = string | number | null;

/**
 * A client with `query(text, params)`: `pg` Pool and Client (also through
 * Hyperdrive), PGlite, Neon's `neon()` HTTP function, Pool and Client, and
 * `@vercel/postgres`. The result may be `{ rows }` or the rows themselves.
 * Only this slice of the client is typed, so no driver is a dependency.
 */
export interface QueryClient {
  /** Runs one parameterized statement. */
  query(text: string, params: QueryParameter[]): PromiseLike<{ rows: readonly unknown[] } | readonly unknown[]>;
}

/**
 * A postgres.js `sql` instance, or Bun's `SQL` (`new SQL(url)`, `sql` from
 * "bun", a reserved connection): their parameterized entry point is `unsafe`.
 */
export interface UnsafeQueryClient {
  /** Runs one parameterized statement and resolves to its rows; `prepare` as postgres.js's option of that name (Bun takes none). */
  unsafe(text: string, params: QueryParameter[], options?: { prepare?: boolean }): PromiseLike<readonly unknown[]>;
}

/** Any client the storage accepts, passed exactly as the user holds it. */
export type PostgresClient = QueryClient | UnsafeQueryClient;

/** A row as the storage reads it. */
export type Row = Record<string, unknown>;

/** A statement as the storage sends it: its text, and the name it is prepared under where the client prepares. */
export interface Statement {
  readonly text: string;
  readonly name: string;
  /** How to read the driver's result, where not as its rows ({@link rowsOf}). */
  readonly answer?: ((result: unknown) => Row[]) | undefined;
}

/** One connection's way to run statements, and how to give it back. */
export interface Connection {
  /** Runs a statement, prepared (by its name) when `prepared` is true; resolves to the driver's result, for {@link rowsOf}. */
  query(statement: Statement, params: QueryParameter[], prepared: boolean): PromiseLike<unknown>;
  /** Gives the connection back; `broken` is the error that broke it, so that a pool discards it. */
  release(broken?: unknown): void;
}

/** Hands out connections of the user's client: what the storage needs of any client. */
export interface Driver {
  /** Whether statements can be prepared through this client. */
  readonly prepares: boolean;
  /**
   * A connection: one checked out of a pool (a promise, which rejects only
   * when no statement was sent), or at once, not as a promise, the client itself.
   */
  acquire(): Connection | Promise<Connection>;
  /**
   * Runs one statement on a connection of its own, checked out and given back
   * within one promise, where a pool can do that for less than
   * {@link acquire}, {@link Connection.query} and {@link Connection.release}:
   * for a try that needs nothing more of its connection.
   */
  send?(statement: Statement, params: QueryParameter[], prepared: boolean, outcome: SendOutcome): Promise<unknown>;
  /**
   * How many rows a statement changed, read from the driver's result where it says (pg's `rowCount`, postgres.js's
   * and Bun's `count`, from the command's tag): once the client's answers do, a compare-and-set goes without the
   * `WITH … RETURNING 1` that otherwise answers a row per row changed.
   */
  readonly changedRows?: (result: unknown) => number | undefined;
}

/** A {@link Driver.changedRows} that reads `field` of a result, when it holds a whole number. */
export const countIn =
  (field: "rowCount" | "count") =>
  (result: unknown): number | undefined => {
    const count = (result as Record<string, unknown> | null | undefined)?.[field];
    return Number.isSafeInteger(count) && (count as number) >= 0 ? (count as number) : undefined;
  };

/**
 * What {@link Driver.send} is told of its failures: the runtime driver's
 * bookkeeping, passed in, as a client kind's module imports nothing of it
 * (error reading imports the kinds).
 */
export interface SendOutcome {
  /** Marks the error of a checkout, which sent nothing, and returns it. */
  unsent(error: unknown): unknown;
  /** Whether a statement's error broke its connection, which is then given back to be discarded. */
  breaks(error: unknown): boolean;
}

/**
 * How a kind of client's errors say what became of a statement, beside what
 * every client shares (SQLSTATEs, Node's socket errors, aborts): see
 * `error-reading.ts`. Codes are matched against an error's `code` whole;
 * messages are patterns.
 */
export interface ErrorSigns {
  /** The statement never reached the server, or the server refused it before running it: retrying is safe. */
  readonly notApplied?: { readonly codes?: readonly string[]; readonly messages?: readonly RegExp[] };
  /** The connection broke with the statement in flight: it may have taken effect. */
  readonly inDoubt?: { readonly codes?: readonly string[]; readonly messages?: readonly RegExp[] };
  /** The client was closed before the statement was sent: it did not take effect, and a retry would not help. */
  readonly closed?: { readonly codes?: readonly string[]; readonly messages?: readonly RegExp[] };
  /** The client stopped waiting for the answer (its own timeout): the server may still run the statement. */
  readonly timedOut?: { readonly messages?: readonly RegExp[] };
  /** The client cancelled the statement at the caller's request: the server may still run it. */
  readonly aborted?: { readonly codes?: readonly string[] };
  /** The field besides `code` that may hold the SQLSTATE (Bun's SQL: `errno`). */
  readonly sqlStateField?: string;
  /** Fields besides `cause` through which the client's errors wrap others (Neon: `sourceError`). */
  readonly wraps?: readonly string[];
}

/**
 * One kind of client: how it is recognised and called, and how its errors
 * read. Each kind is a module of its own; `kinds.ts` lists them.
 */
export interface ClientKind {
  /**
   * The driver for `client` when it is of this kind, else `undefined`. A kind
   * driven as a `query(text, params)` object, which differs only in its
   * errors (PGlite, `neon()` over HTTP), has none.
   *
   * @throws StorageOptionError when it is of this kind but cannot be used as given
   */
  driverFor?(client: object): Driver | undefined;
  /** What this kind's errors say, beyond what all clients' say. */
  readonly errors?: ErrorSigns;
}

/** The rows of a driver's result, which may be `{ rows }` or the rows themselves, checked. */
export function rowsOf(result: unknown): Row[] {
  const rows = Array.isArray(result) ? result : (result as { rows?: unknown } | null | undefined)?.rows;
  if (!Array.isArray(rows)) {
    throw new PostgresStorageError(
      "client.query() resolved to neither rows nor { rows }; pass the driver's own client",
    );
  }
  if (Array.isArray(rows[0])) {
    throw new PostgresStorageError("the client returns rows as arrays; pass it without arrayMode");
  }
  return rows as Row[];
}

/** A text column of a row, checked: a client that transforms results would otherwise corrupt keys and values. */
export function textOf(row: Row, column: string): string {
  const value = row[column];
  if (typeof value !== "string") {
    throw new PostgresStorageError(
      `the client returned column ${column} as ${typeof value}, not text; pass it without result transforms`,
    );
  }
  return value;
}
