/**
 * The table created lazily: once per driver at a time (single-flight), on the
 * connection that found it missing, its schema first when that is missing
 * too, and any number of processes creating it at once all succeeding.
 */
import type { Trace } from "../observe.ts";
import { quotedSchemaOf, schemaDdl, tableDdl } from "../table.ts";
import type { Connection } from "./clients.ts";
import { sqlState } from "./error-reading.ts";

const INVALID_SCHEMA_NAME = "3F000";
// Concurrent CREATE ... IF NOT EXISTS in separate sessions can still collide
// on the catalogs (the table, its row type, its schema); by the time these
// are raised the other creator has won.
const CREATED_CONCURRENTLY = new Set(["42P07", "42P06", "42710", "23505"]);

/** The DDL statement each failed creation's error came from: the hint differs for `CREATE SCHEMA`. */
export const FAILED_DDL = new WeakMap<object, string>();

/** Creates one table, one creation at a time. */
export class TableCreation {
  readonly #quotedTable: string;
  /** The creation in flight, if any. */
  #creating: Promise<void> | undefined;
  /**
   * How many creations have finished. A statement sent before the last one
   * finished may still answer "no such table" after it (an answer can arrive
   * late), and needs no creation of its own.
   */
  #finished = 0;

  /** @param quotedTable the table, quoted */
  constructor(quotedTable: string) {
    this.#quotedTable = quotedTable;
  }

  /** The creation in flight, if any: a pipelining client's statements wait for it. */
  get inFlight(): Promise<void> | undefined {
    return this.#creating;
  }

  /** How many creations have finished. */
  get finished(): number {
    return this.#finished;
  }

  /** Creates the table on `connection`, or waits for the creation already in flight. */
  on(connection: Connection, trace?: Trace): Promise<void> {
    if (trace !== undefined && this.#creating === undefined) trace.createdTable = true;
    this.#creating ??= this.#create(connection, trace)
      .then(() => {
        this.#finished += 1;
      })
      .finally(() => {
        this.#creating = undefined;
      });
    return this.#creating;
  }

  async #create(connection: Connection, trace?: Trace): Promise<void> {
    const schema = quotedSchemaOf(this.#quotedTable);
    const table = tableDdl(this.#quotedTable);
    if ((await this.#run(connection, table, schema !== undefined, trace)) === INVALID_SCHEMA_NAME && schema) {
      await this.#run(connection, schemaDdl(schema), false, trace);
      await this.#run(connection, table, false, trace);
    }
  }

  /**
   * Runs one DDL statement; losing a creation race counts as success once the
   * statement, run again, finds what the winner created (IF NOT EXISTS): the
   * same codes also say that something else of that name is in the way (a
   * domain or an enum named like the table: 42710), which fails again.
   * Answers 3F000 instead of throwing it when the schema may be created first.
   */
  async #run(
    connection: Connection,
    ddl: string,
    schemaMayBeMissing: boolean,
    trace?: Trace,
    raced = false,
  ): Promise<string | undefined> {
    const startedAt = performance.now();
    try {
      await connection.query({ text: ddl, name: "" }, [], false);
      trace?.statement(ddl, startedAt, false);
      return undefined;
    } catch (error) {
      trace?.statement(ddl, startedAt, false, error);
      const code = sqlState(error);
      if (code !== undefined && CREATED_CONCURRENTLY.has(code) && !raced) {
        return this.#run(connection, ddl, schemaMayBeMissing, trace, true);
      }
      if (code === INVALID_SCHEMA_NAME && schemaMayBeMissing) return code;
      if (typeof error === "object" && error !== null) FAILED_DDL.set(error, ddl);
      throw error;
    }
  }
}
