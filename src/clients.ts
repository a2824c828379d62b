import { PostgresStorageError } from "./errors.js";

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

/** A postgres.js `sql` instance, whose parameterized entry point is `unsafe`. */
export interface UnsafeQueryClient {
  /** Runs one parameterized statement and resolves to its rows. */
  unsafe(text: string, params: QueryParameter[]): PromiseLike<readonly unknown[]>;
}

/** Any client the storage accepts, passed exactly as the user holds it. */
export type PostgresClient = QueryClient | UnsafeQueryClient;

/** A row as the storage reads it. */
export type Row = Record<string, unknown>;

/** Runs one statement and resolves to its rows: the only thing the storage needs of a client. */
export type Execute = (text: string, params: QueryParameter[]) => Promise<Row[]>;

/**
 * Wraps whatever client the user passed into one `Execute` function.
 *
 * @throws PostgresStorageError when the object is no client we know how to call
 */
export function toExecute(client: unknown): Execute {
  const candidate = client as Partial<QueryClient & UnsafeQueryClient> | null | undefined;
  if (candidate && typeof candidate.query === "function") {
    const query = candidate.query.bind(candidate);
    return async (text, params) => rowsOf(await query(text, params));
  }
  if (candidate && typeof candidate.unsafe === "function") {
    const unsafe = candidate.unsafe.bind(candidate);
    return async (text, params) => rowsOf(await unsafe(text, params));
  }
  throw new PostgresStorageError(
    `client must be a pg or Neon Pool or Client, neon(), a postgres.js sql, PGlite, ` +
      `or any object with query(text, params); got ${client === null ? "null" : typeof client}`,
  );
}

function rowsOf(result: unknown): Row[] {
  const rows = Array.isArray(result) ? result : (result as { rows?: unknown } | null | undefined)?.rows;
  if (!Array.isArray(rows)) {
    throw new PostgresStorageError("client.query() resolved to neither rows nor { rows }; pass the driver's own client");
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
    throw new PostgresStorageError(`the client returned column ${column} as ${typeof value}, not text; pass it without result transforms`);
  }
  return value;
}
