import { ClientStateError, PostgresStorageError, StorageOptionError } from "../errors.ts";

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
  /** A connection: one checked out of a pool, or (at once, not as a promise) the client itself. */
  acquire(): Connection | Promise<Connection>;
}

/** The slice of a pg-style client (pg, Neon and @vercel/postgres Clients and Pools) that prepares named statements. */
interface NamingClient extends QueryClient {
  query(config: { name: string; text: string; values: QueryParameter[] }): PromiseLike<{ rows: readonly unknown[] }>;
  query(text: string, params: QueryParameter[]): PromiseLike<{ rows: readonly unknown[] } | readonly unknown[]>;
}

/** A connection checked out of a pg-style pool. */
interface PooledClient extends NamingClient {
  release(error?: Error | boolean): void;
  on(event: "error", listener: (error: Error) => void): unknown;
  removeListener(event: "error", listener: (error: Error) => void): unknown;
}

/** A pg-style pool, whose connections are checked out and released. */
interface PoolLike {
  connect(): Promise<PooledClient>;
}

/**
 * Wraps whatever client the user passed into a {@link Driver}. pg-style Pools
 * hand out one connection per operation, checked out and released here: a pool's
 * own `query()` discards its connection after any error, even "no such table",
 * which would cost a reconnect per failed statement. pg-style clients prepare
 * named statements, postgres.js its own; Bun's SQL prepares (or not) by its own
 * `prepare` option, which no statement can change; `neon()` over HTTP, PGlite
 * and plain `query(text, params)` objects run every statement as it is.
 *
 * @throws StorageOptionError when the object is no client we know how to call
 */
export function toDriver(client: unknown): Driver {
  const candidate = client as Partial<NamingClient & UnsafeQueryClient & PoolLike> | null | undefined;
  // pg, Neon and @vercel/postgres Clients and Pools connect; neon() over HTTP and PGlite do not.
  const pgStyle = typeof candidate?.connect === "function";
  if (
    candidate &&
    typeof candidate.query === "function" &&
    pgStyle &&
    "idleCount" in candidate &&
    "totalCount" in candidate
  ) {
    const pool = candidate as PoolLike;
    return {
      prepares: true,
      async acquire() {
        const connection = await pool.connect();
        // A checked-out client's errors are its holder's to handle (the pool listens only to idle ones):
        // unheard, a connection lost meanwhile would crash the process.
        let lost: Error | undefined;
        const onError = (error: Error) => {
          lost = error;
        };
        connection.on("error", onError);
        return {
          query: (statement, params, prepared) => namedQuery(connection, statement, params, prepared),
          release(broken) {
            connection.removeListener("error", onError);
            connection.release(lost ?? (broken instanceof Error ? broken : broken !== undefined));
          },
        };
      },
    };
  }
  let connection: Connection | undefined;
  let prepares = pgStyle;
  if (candidate && typeof candidate.query === "function") {
    const named = candidate as NamingClient;
    connection = {
      query: pgStyle
        ? (statement, params, prepared) => {
            const problem = clientStateProblem(named);
            return problem === undefined
              ? namedQuery(named, statement, params, prepared)
              : Promise.reject(new ClientStateError(problem));
          }
        : (statement, params) => named.query(statement.text, params),
      release() {},
    };
  } else if (candidate && typeof candidate.unsafe === "function") {
    const sql = candidate as UnsafeQueryClient;
    // Bun's SQL, unlike postgres.js, names its database in options.adapter ("postgres", "mysql", "sqlite").
    const adapter = (candidate as { options?: { adapter?: unknown } }).options?.adapter;
    if (adapter !== undefined && adapter !== "postgres") {
      throw new StorageOptionError(
        "client",
        `client is Bun's SQL on ${String(adapter)}; it must be on PostgreSQL (a postgres:// URL)`,
      );
    }
    prepares = adapter === undefined;
    connection = prepares
      ? { query: (statement, params, prepare) => sql.unsafe(statement.text, params, { prepare }), release() {} }
      : { query: (statement, params) => sql.unsafe(statement.text, params), release() {} };
  }
  if (connection === undefined) {
    throw new StorageOptionError(
      "client",
      `client must be a pg or Neon Pool or Client, neon(), a postgres.js sql, PGlite, Bun's SQL, ` +
        `or any object with query(text, params); got ${client === null ? "null" : typeof client}`,
    );
  }
  const only = connection;
  return { prepares, acquire: () => only };
}

/**
 * The state fields of pg's `Client`, the same in pg-native's and in the forks
 * inside Neon's driver and `@vercel/postgres` (pg 8.x throughout); read only
 * when they hold booleans, so another object with a `connect` method is left alone.
 */
interface ClientState {
  readonly _connecting?: unknown;
  readonly _connected?: unknown;
  readonly _ending?: unknown;
  readonly _queryable?: unknown;
}

/**
 * Why a pg-style Client cannot run a statement now, if it cannot. pg itself
 * rejects statements on an ended or broken Client, without saying that a
 * Client never reconnects; but it queues a statement on a Client that was
 * never connected until `connect()` is called, so the operation would wait
 * forever (and Node, with nothing else pending, exit with code 0 mid-update).
 * A Client whose `connect()` is under way is fine: pg sends the statement once connected.
 */
function clientStateProblem(client: object): string | undefined {
  const state = client as ClientState;
  if (state._ending === true) {
    return "the Client was ended (client.end()) and cannot run statements again: connect a new one, or pass a Pool";
  }
  if (state._queryable === false) {
    return "the Client lost its connection, and a Client never reconnects: connect a new one, or pass a Pool, which replaces lost connections";
  }
  if (state._connected === false && state._connecting === false) {
    return "the Client is not connected, and would wait forever: call await client.connect() first, or pass a Pool";
  }
  return undefined;
}

function namedQuery(
  client: NamingClient,
  statement: Statement,
  params: QueryParameter[],
  prepared: boolean,
): PromiseLike<unknown> {
  return prepared
    ? client.query({ name: statement.name, text: statement.text, values: params })
    : client.query(statement.text, params);
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
