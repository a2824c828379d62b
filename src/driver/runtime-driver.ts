/**
 * Runs the storage's statements on the user's client: one connection per try,
 * the table created when a write finds it missing, prepared statements while
 * the connection keeps them, retries of transient failures, and the driver's
 * errors explained.
 */
import { sqlState, type Operation, type PostgresStorageError } from "../errors.ts";
import { explainFailure } from "../failure.ts";
import type { Trace } from "../observe.ts";
import { mayHaveApplied, retryAfter, retrying, transience, type RetryPolicy, type Transience } from "../retry.ts";
import { quotedSchemaOf } from "../table.ts";
import {
  rowsOf,
  toDriver,
  type Connection,
  type Driver,
  type PostgresClient,
  type QueryParameter,
  type Row,
  type Statement,
} from "./clients.ts";
import { TableCreation } from "./table-creation.ts";

// SQLSTATEs the driver acts on.
const UNDEFINED_TABLE = "42P01";
// A pooler that hands each transaction another server connection loses
// prepared statements: there the statement "does not exist", or another
// client's of the same name "already exists". Either way it did not run.
const PREPARED_STATEMENT_LOST = new Set(["26000", "42P05"]);
// Clients behind such a pooler, so that a storage created later on one (one per request, say) starts unprepared.
const LOST_PREPARATIONS = new WeakSet<object>();
// A read-only server (a standby, or a primary demoted by a failover) refused a write: the next statement on that
// connection would reach the same server, so it is discarded, and the retry takes a new one.
const READ_ONLY = "25006";
// Errors of checking a connection out of a pool: no statement was sent, whatever the error says. A proxy that
// accepts and then finds its server down closes the socket mid-handshake, which pg reports in the words of a
// connection lost mid-query ("Connection terminated unexpectedly").
const UNSENT = new WeakSet<object>();
const unsent = (error: unknown): unknown => {
  if (typeof error === "object" && error !== null) UNSENT.add(error);
  return error;
};
/** {@link transience}, knowing that a failed checkout sent nothing. */
const classify = (error: unknown): Transience => {
  const kind = transience(error);
  return kind === "unknown" && typeof error === "object" && error !== null && UNSENT.has(error) ? "not-applied" : kind;
};

/** What the runtime driver needs to know of the storage. */
export interface RuntimeDriverOptions {
  readonly client: PostgresClient;
  /** Prepare statements where the client can (the storage's `prepare` option). */
  readonly prepare: boolean;
  /** Create the table when a write finds it missing (the storage's `createTable` option). */
  readonly createTable: boolean;
  readonly retry: RetryPolicy;
  /** The table name as given, for messages. */
  readonly tableName: string;
  /** The same, quoted. */
  readonly quotedTable: string;
}

/** How to run a statement: what to do when the table does not exist yet, and whether it may run twice. */
export interface RunOptions {
  /** "empty": the table's absence is the answer (nothing stored); "create": create it and run again. */
  readonly missing: "empty" | "create";
  /** Retry only failures that prove it did not run: it must not take effect twice. */
  readonly onlyIfNotApplied?: boolean;
  /** The operation's trace, when the storage is observed: statements, retries and creation are counted into it. */
  readonly trace?: Trace | undefined;
}

/**
 * The storage's way to the database, whatever client it was given: runs a
 * statement and answers its rows, or throws a PostgresStorageError that says
 * which operation failed, why, and what to do.
 */
export class RuntimeDriver {
  readonly #driver: Driver;
  readonly #client: object;
  readonly #createTable: boolean;
  readonly #retry: RetryPolicy;
  readonly #tableName: string;
  readonly #quotedTable: string;
  #prepare: boolean;
  readonly #creation: TableCreation;

  /**
   * Recognises the client; sends nothing.
   *
   * @throws StorageOptionError when the client is none the storage can call
   */
  constructor(options: RuntimeDriverOptions) {
    this.#driver = toDriver(options.client);
    this.#client = options.client;
    this.#prepare = options.prepare && this.#driver.prepares && !LOST_PREPARATIONS.has(this.#client);
    this.#createTable = options.createTable;
    this.#retry = options.retry;
    this.#tableName = options.tableName;
    this.#quotedTable = options.quotedTable;
    this.#creation = new TableCreation(options.quotedTable, (ddl, error) =>
      this.#explain({ operation: "create table", statement: ddl }, error),
    );
  }

  /**
   * Runs a statement of `operation`, retrying transient failures as the
   * policy and `options` allow.
   *
   * @throws PostgresStorageError when it fails for good
   */
  async run(
    operation: Operation,
    key: string | undefined,
    statement: Statement,
    params: QueryParameter[],
    options: RunOptions,
  ): Promise<Row[]> {
    try {
      return await this.#attempt(statement, params, options);
    } catch (first) {
      // Off the common path: whether any try may have taken effect (unless its error proves it did not).
      let inDoubt = mayHaveTakenEffect(first);
      const again = async () => {
        if (options.trace !== undefined) options.trace.retries += 1;
        try {
          return await this.#attempt(statement, params, options);
        } catch (error) {
          inDoubt ||= mayHaveTakenEffect(error);
          throw error;
        }
      };
      try {
        return await retryAfter(first, again, this.#retry, {
          onlyIfNotApplied: options.onlyIfNotApplied === true,
          classify,
        });
      } catch (last) {
        throw this.#explain({ operation, key, inDoubt: inDoubt && writes(operation) }, last);
      }
    }
  }

  /**
   * Creates the table (and its schema) if it does not exist, with retries.
   *
   * @throws PostgresStorageError when it cannot
   */
  async createTable(): Promise<void> {
    try {
      await retrying(() => this.#withConnection((connection) => this.#creation.on(connection)), this.#retry, {
        onlyIfNotApplied: false,
        classify,
      });
    } catch (error) {
      throw this.#explain({ operation: "create table" }, error);
    }
  }

  /**
   * One try on one connection, from the first statement through creating a
   * missing table to the statement again: a pool's connection is checked out
   * once, and kept unless an error broke it.
   */
  async #attempt(statement: Statement, params: QueryParameter[], options: RunOptions): Promise<Row[]> {
    // Written out rather than through #withConnection: every statement passes here, and a closure per call shows.
    const acquired = this.#driver.acquire();
    // A client that is not checked out per operation (postgres.js, Bun) pipelines: a statement sent while the
    // CREATE TABLE runs may follow it on its connection as Parse/Describe/Flush without a Sync, and PgBouncer in
    // transaction mode hands the server back at the CREATE's ReadyForQuery and drops that answer, so the call would
    // never settle. Such statements wait for the creation.
    const creating = this.#creation.inFlight;
    if (creating !== undefined && !(acquired instanceof Promise)) await creating.catch(() => {});
    const connection =
      acquired instanceof Promise ? await acquired.catch((error: unknown) => Promise.reject(unsent(error))) : acquired;
    let broken: unknown;
    const creationsBefore = this.#creation.finished;
    try {
      try {
        return await this.#query(connection, statement, params, options.trace);
      } catch (error) {
        if (sqlState(error) !== UNDEFINED_TABLE) throw error;
        if (options.missing === "empty") return [];
        if (!this.#createTable) throw error;
      }
      // Sent before this driver's last creation finished, its "no such table" may be stale: run it again first.
      if (this.#creation.finished !== creationsBefore) {
        try {
          return await this.#query(connection, statement, params, options.trace);
        } catch (error) {
          if (sqlState(error) !== UNDEFINED_TABLE) throw error; // dropped since: create it again
        }
      }
      await this.#creation.on(connection, options.trace);
      return await this.#query(connection, statement, params, options.trace);
    } catch (error) {
      if (breaksConnection(error)) broken = error;
      throw error;
    } finally {
      connection.release(broken);
    }
  }

  /** Runs `work` on a connection of the client, and gives it back (to be discarded when an error broke it). */
  async #withConnection<R>(work: (connection: Connection) => Promise<R>): Promise<R> {
    const acquired = this.#driver.acquire();
    const connection =
      acquired instanceof Promise ? await acquired.catch((error: unknown) => Promise.reject(unsent(error))) : acquired;
    let broken: unknown;
    try {
      return await work(connection);
    } catch (error) {
      if (breaksConnection(error)) broken = error;
      throw error;
    } finally {
      connection.release(broken);
    }
  }

  /** Runs a statement, prepared while this driver prepares; the first that finds its preparation lost ends that. */
  async #query(connection: Connection, statement: Statement, params: QueryParameter[], trace?: Trace): Promise<Row[]> {
    if (trace !== undefined) return this.#traced(connection, statement, params, trace);
    if (!this.#prepare) return rowsOf(await connection.query(statement, params, false));
    try {
      return rowsOf(await connection.query(statement, params, true));
    } catch (error) {
      if (!PREPARED_STATEMENT_LOST.has(sqlState(error) ?? "")) throw error;
      this.#lostPreparations();
      return rowsOf(await connection.query(statement, params, false));
    }
  }

  /** {@link #query} of an observed storage: each statement sent is recorded in the trace. Kept apart from the hot path. */
  async #traced(connection: Connection, statement: Statement, params: QueryParameter[], trace: Trace): Promise<Row[]> {
    const send = async (prepared: boolean) => {
      const startedAt = performance.now();
      try {
        const rows = rowsOf(await connection.query(statement, params, prepared));
        trace.statement(statement.text, startedAt, prepared);
        return rows;
      } catch (error) {
        trace.statement(statement.text, startedAt, prepared, error);
        throw error;
      }
    };
    if (!this.#prepare) return send(false);
    try {
      return await send(true);
    } catch (error) {
      if (!PREPARED_STATEMENT_LOST.has(sqlState(error) ?? "")) throw error;
      this.#lostPreparations();
      trace.unprepared = true;
      return send(false);
    }
  }

  /** Stops preparing, on this client for every storage: a pooler behind it loses prepared statements. */
  #lostPreparations(): void {
    this.#prepare = false;
    LOST_PREPARATIONS.add(this.#client);
  }

  #explain(
    at: { operation: Operation; key?: string | undefined; statement?: string; inDoubt?: boolean },
    error: unknown,
  ): PostgresStorageError {
    return explainFailure(
      { ...at, tableName: this.#tableName, table: this.#quotedTable, schema: quotedSchemaOf(this.#quotedTable) },
      error,
    );
  }
}

/** Whether a failed try may have taken effect: not when it failed before its statement was sent. */
const mayHaveTakenEffect = (error: unknown) =>
  !(typeof error === "object" && error !== null && UNSENT.has(error)) && mayHaveApplied(error);

/** Whether an operation changes what is stored, so that a failure of it may leave a change behind. */
const writes = (operation: Operation) => operation !== "read" && operation !== "has" && operation !== "readAll";

/**
 * Whether an error leaves its connection unfit for the next statement: one the
 * server did not answer with a SQLSTATE (a lost socket, say, or pg's
 * `query_timeout`, after which the statement still runs on that connection),
 * the server's own goodbye (class 08, 57P01…, any FATAL such as a standby's
 * "terminating connection due to conflict with recovery", 40001), or a
 * read-only server (25006), which the next statement on that connection would reach again.
 */
export function breaksConnection(error: unknown): boolean {
  const code = sqlState(error);
  if (code === undefined || code.startsWith("08") || code.startsWith("57P") || code === READ_ONLY) return true;
  const { severity } = error as { severity?: unknown };
  return severity === "FATAL" || severity === "PANIC";
}
