/**
 * Runs the storage's statements on the user's client: one connection per
 * try, the table created when a write finds it missing, and transient
 * failures retried. What each client needs is in its kind's module
 * (`kinds.ts`), creating the table in `table-creation.ts`, preparing in
 * `preparing.ts`, reading errors in `error-reading.ts`, what a failed checkout
 * sent in `unsent.ts`.
 */
import { StatementFailure } from "../errors.ts";
import type { Trace } from "../observe.ts";
import { retryAfter, retrying, type RetryPolicy } from "../retry.ts";
import {
  rowsOf,
  type Connection,
  type Driver,
  type PostgresClient,
  type QueryParameter,
  type Row,
  type Statement,
} from "./clients.ts";
import { breaksConnection, sqlState } from "./error-reading.ts";
import { toDriver } from "./kinds.ts";
import { Preparing } from "./preparing.ts";
import { FAILED_DDL, TableCreation } from "./table-creation.ts";
import type { RunOptions } from "./run-options.ts";
import { SEND_OUTCOME, classify, mayHaveTakenEffect, unsent } from "./unsent.ts";

const UNDEFINED_TABLE = "42P01";

/** The DDL statement a failure came from, when creating the table failed. */
const ddlOf = (error: unknown) => (typeof error === "object" && error !== null ? FAILED_DDL.get(error) : undefined);

/** What the runtime driver needs to know of the storage. */
export interface RuntimeDriverOptions {
  readonly client: PostgresClient;
  /** Prepare statements where the client can (the storage's `prepare` option). */
  readonly prepare: boolean;
  /** Create the table when a write finds it missing (the storage's `createTable` option). */
  readonly createTable: boolean;
  readonly retry: RetryPolicy;
  /** The table, quoted. */
  readonly quotedTable: string;
}

/**
 * The storage's way to the database, whatever client it was given: runs a
 * statement and answers its rows, or throws a {@link StatementFailure} for
 * the storage to explain.
 */
export class RuntimeDriver {
  readonly #driver: Driver;
  readonly #createTable: boolean;
  readonly #retry: RetryPolicy;
  readonly #preparing: Preparing;
  readonly #creation: TableCreation;

  /**
   * Recognises the client; sends nothing.
   *
   * @throws StorageOptionError when the client is none the storage can call
   */
  constructor(options: RuntimeDriverOptions) {
    this.#driver = toDriver(options.client);
    this.#preparing = new Preparing(options.client, options.prepare && this.#driver.prepares);
    this.#createTable = options.createTable;
    this.#retry = options.retry;
    this.#creation = new TableCreation(options.quotedTable);
  }

  /** How many rows a statement that returns none changed, when the client says ({@link Driver.changedRows}). */
  get changedRows(): Driver["changedRows"] {
    return this.#driver.changedRows;
  }

  /**
   * Runs a statement, retrying transient failures as the policy and `options` allow.
   *
   * @throws StatementFailure when it fails for good
   */
  run(statement: Statement, params: QueryParameter[], options: RunOptions): Promise<Row[]> {
    // Not async: the common path is the first try's promise, with no frame of its own around it.
    const alone = this.#driver.send;
    const first =
      alone !== undefined && options.trace === undefined
        ? this.#sendAlone(alone, statement, params, options)
        : this.#attempt(statement, params, options);
    return first.catch((error: unknown) => this.#afterFailure(error, statement, params, options));
  }

  /**
   * A first try through the driver's own {@link Driver.send}, for a statement not traced (a trace counts what the
   * try meets on its way). A statement that finds its preparation lost, or no table to write to, goes on as
   * {@link #attempt} goes on, on a connection of its own.
   */
  #sendAlone(
    alone: NonNullable<Driver["send"]>,
    statement: Statement,
    params: QueryParameter[],
    options: RunOptions,
  ): Promise<Row[]> {
    const prepared = this.#preparing.on;
    const creationsBefore = this.#creation.finished;
    return alone(statement, params, prepared, SEND_OUTCOME).then(statement.answer ?? rowsOf, (error: unknown) => {
      const next = this.#afterStatementFailed(error, prepared, options, false);
      if (next === "empty") return [];
      return this.#attempt(statement, params, options, next === "create" ? creationsBefore : undefined);
    });
  }

  /**
   * What a try does after its statement failed: "again" when its preparation was lost (from now on, statements go
   * unprepared), "empty" when the table's absence is the answer, "create" when the table is to be created (unless
   * this try `created` it already). Any other failure is thrown.
   */
  #afterStatementFailed(
    error: unknown,
    prepared: boolean,
    { missing, trace }: RunOptions,
    created: boolean,
  ): "again" | "empty" | "create" {
    if (prepared && this.#preparing.lost(error)) {
      if (trace !== undefined) trace.unprepared = true;
      return "again";
    }
    if (sqlState(error) !== UNDEFINED_TABLE) throw error;
    if (missing === "empty") return "empty";
    if (!this.#createTable || created) throw error;
    return "create";
  }

  /** After a try failed: the retries the policy and `options` allow, and the failure explained if they fail too. */
  async #afterFailure(
    first: unknown,
    statement: Statement,
    params: QueryParameter[],
    options: RunOptions,
  ): Promise<Row[]> {
    // Whether any try may have taken effect (unless its error proves it did not, or it changes nothing).
    let inDoubt = !options.readsOnly && mayHaveTakenEffect(first);
    const again = async () => {
      if (options.trace !== undefined) options.trace.retries += 1;
      try {
        return await this.#attempt(statement, params, options);
      } catch (error) {
        inDoubt ||= !options.readsOnly && mayHaveTakenEffect(error);
        throw error;
      }
    };
    try {
      const rows = await retryAfter(first, again, this.#retry, {
        onlyIfNotApplied: options.onlyIfNotApplied,
        classify,
      });
      if (inDoubt && options.doubt !== undefined) options.doubt.earlierTryMayHaveApplied = true;
      return rows;
    } catch (last) {
      throw new StatementFailure(last, sqlState(last), inDoubt, ddlOf(last));
    }
  }

  /**
   * Creates the table (and its schema) if it does not exist, with retries.
   *
   * @param trace the operation's trace, when the storage is observed
   * @throws StatementFailure when it cannot
   */
  async createTable(trace?: Trace): Promise<void> {
    try {
      await retrying(() => this.#withConnection((connection) => this.#creation.on(connection, trace)), this.#retry, {
        onlyIfNotApplied: false,
        classify,
      });
    } catch (error) {
      throw new StatementFailure(error, sqlState(error), false, ddlOf(error));
    }
  }

  /**
   * One try: a connection (a pool's checked out once, and kept unless an error broke it), and the statement on it;
   * when it finds no table, the table created (once per driver at a time, see TableCreation) and the statement again.
   * One function, written out rather than through #withConnection: every statement passes here, and a closure or an
   * async frame per call shows.
   *
   * @param foundNoTable when the try's statement was sent already and found no table (see #sendAlone): how many
   *   creations had finished when it was sent
   */
  async #attempt(
    statement: Statement,
    params: QueryParameter[],
    options: RunOptions,
    foundNoTable?: number,
  ): Promise<Row[]> {
    const acquired = this.#acquire();
    let connection: Connection;
    if (acquired instanceof Promise) {
      try {
        connection = await acquired;
      } catch (error) {
        throw unsent(error);
      }
    } else {
      connection = acquired;
    }
    let broken: unknown;
    try {
      const creationsBefore = foundNoTable ?? this.#creation.finished;
      let stale = false;
      let created = false;
      for (let alreadySent = foundNoTable !== undefined; ; alreadySent = false) {
        const prepared = this.#preparing.on;
        if (!alreadySent) {
          try {
            return (statement.answer ?? rowsOf)(await send(connection, statement, params, prepared, options.trace));
          } catch (error) {
            const next = this.#afterStatementFailed(error, prepared, options, created);
            if (next === "again") continue;
            if (next === "empty") return [];
          }
        }
        // Sent before this driver's last creation finished, its "no such table" may be stale: run it again first
        // (failing again, the table was dropped since, and is created again).
        if (!stale && this.#creation.finished !== creationsBefore) {
          stale = true;
          continue;
        }
        await this.#creation.on(connection, options.trace);
        created = true;
      }
    } catch (error) {
      if (breaksConnection(error)) broken = error;
      throw error;
    } finally {
      connection.release(broken);
    }
  }

  /** Runs `work` on a connection of the client, and gives it back (to be discarded when an error broke it). */
  async #withConnection<R>(work: (connection: Connection) => Promise<R>): Promise<R> {
    const connection = await Promise.resolve(this.#acquire()).catch((error: unknown) => Promise.reject(unsent(error)));
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

  /** A connection: checked out of a pool (a promise, whose rejection sent nothing), or the client's one. */
  #acquire(): Connection | Promise<Connection> {
    const acquired = this.#driver.acquire();
    if (acquired instanceof Promise) return acquired;
    // A client that is not checked out per operation (postgres.js, Bun) pipelines: a statement sent while the
    // CREATE TABLE runs may follow it on its connection as Parse/Describe/Flush without a Sync, and PgBouncer in
    // transaction mode hands the server back at the CREATE's ReadyForQuery and drops that answer, so the call would
    // never settle. Such statements wait for the creation.
    const creating = this.#creation.inFlight;
    return creating === undefined
      ? acquired
      : creating.then(
          () => acquired,
          () => acquired,
        );
  }
}

/** Sends a statement; an observed storage's statements are each recorded in its trace. */
function send(
  connection: Connection,
  statement: Statement,
  params: QueryParameter[],
  prepared: boolean,
  trace: Trace | undefined,
): PromiseLike<unknown> {
  if (trace === undefined) return connection.query(statement, params, prepared);
  const startedAt = performance.now();
  return connection.query(statement, params, prepared).then(
    (result) => {
      trace.statement(statement.text, startedAt, prepared);
      return result;
    },
    (error: unknown) => {
      trace.statement(statement.text, startedAt, prepared, error);
      throw error;
    },
  );
}
