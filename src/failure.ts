/**
 * The one place where an operation's failure gets its context: a driver's
 * failure explained (an error that keeps the SQLSTATE and the driver's own
 * error, names the operation, and says what to do about it), and an error of
 * ours raised inside an operation completed with the operation, key and table.
 */
import { clientGaveUp, sqlState, type GaveUp } from "./driver/error-reading.ts";
import {
  ClientStateError,
  PostgresStorageError,
  StatementFailure,
  StorageConflictError,
  describe,
  showKey,
  type Operation,
} from "./errors.ts";
import { quotedSchemaOf } from "./table.ts";

/** Where an operation ran: what the storage knows when a statement fails. */
export interface FailureContext {
  readonly operation: Operation;
  /** The grammY key, when the operation had one. */
  readonly key?: string | undefined;
  /** The table name as the user gave it. */
  readonly tableName: string;
  /** The same, quoted for SQL. */
  readonly table: string;
  /**
   * The DDL statement that failed, when creating the table failed (lazily in a
   * write, or in `createTable()`): creating a table in a missing schema runs
   * `CREATE SCHEMA` before `CREATE TABLE`.
   */
  readonly statement?: string | undefined;
  /** Whether a try may have taken effect (see {@link PostgresStorageError.inDoubt}). */
  readonly inDoubt?: boolean | undefined;
}

/**
 * An operation's failure, with the operation's context: a statement's failure
 * explained ({@link explainFailure}; only a write's is ever in doubt), an
 * error of ours completed with the operation's details it lacks. Anything
 * else (a programming error, say) passes unchanged.
 */
export function inOperation(context: FailureContext, failure: unknown): unknown {
  if (failure instanceof StatementFailure) {
    const inDoubt = failure.inDoubt && writes(context.operation);
    return explainFailure({ ...context, inDoubt, statement: failure.statement }, failure.cause);
  }
  return failure instanceof PostgresStorageError ? completed(failure, context) : failure;
}

/**
 * Explains a driver's error as a PostgresStorageError that keeps its SQLSTATE
 * and the original as `cause`, names the operation, and says what to do about
 * it. An error that is already ours gets the operation's details it lacks,
 * unless the statement may have taken effect before it (a driver's answer
 * this library could not read): then it is explained as a driver's is.
 */
export function explainFailure(context: FailureContext, error: unknown): PostgresStorageError {
  const { operation, key, tableName, table, inDoubt = false } = context;
  // In a statement's try, the errors of ours are those of reading its answer (rowsOf, a Statement's answer).
  const ours = error instanceof PostgresStorageError;
  if (ours && !inDoubt) return completed(error, context);
  const code = sqlState(error);
  const creating = context.statement !== undefined && operation !== "createTable";
  const target = key === undefined ? `table ${table}` : `key ${showKey(key)} in table ${table}`;
  // A ClientStateError's message says what to do; an earlier try that was sent may have taken effect all the same.
  const hint =
    error instanceof ClientStateError
      ? inDoubt
        ? `An earlier try ${mayHave(context)}`
        : ""
      : hintFor(code, context, clientGaveUp(error), ours);
  return new PostgresStorageError(
    `${operation} of ${target} failed${creating ? " creating the table" : ""}: ${describe(error)}${code ? ` (SQLSTATE ${code})` : ""}${hint ? `. ${hint}` : ""}`,
    { code, cause: error, operation, key, table: tableName, inDoubt },
  );
}

/**
 * A write-back's failure after one of its tries whose answer was lost, and whose retry found another writer's change:
 * that try may have been stored before the change, so the write is in doubt whatever failed after it (a statement, a
 * value of the other writer's this storage cannot decode, a conflict). Errors of other code, or of other operations,
 * pass unchanged.
 */
export function afterLostTry(error: unknown): unknown {
  if (error instanceof StatementFailure) {
    return error.inDoubt ? error : new StatementFailure(error.cause, error.code, true, error.statement);
  }
  // An error that names an operation already is another operation's (one an onConflict function threw, say).
  if (!(error instanceof PostgresStorageError) || error.inDoubt || error.operation !== undefined) return error;
  if (error instanceof StorageConflictError) return new StorageConflictError(error.key, error.fields, true);
  // Made by this operation for this failure, and not yet thrown: completed here, as completed() does, keeping its class
  // (no longer saying that nothing was written).
  return Object.assign(error, {
    message: `${error.message.replace(/^nothing was written: /, "")}. A try of this write whose answer was lost may have been stored before another writer's change replaced it`,
    inDoubt: true,
  });
}

/** Whether an operation changes what is stored, so that a failure of it may leave a change behind. */
const writes = (operation: Operation) => operation !== "read" && operation !== "has" && operation !== "readAll";

/** An error of ours raised inside an operation (a value the codec or schema refused, say), with the operation's details it lacks. */
function completed(error: PostgresStorageError, { operation, key, tableName }: FailureContext): PostgresStorageError {
  if (error.operation === undefined) {
    // The fields are read-only to users; this is the one place that completes them.
    Object.assign(error, { operation, key: error.key ?? key, table: tableName });
  }
  return error;
}

/** How to tell whether what failed took effect: a key's row shows it; prune() and createTable() can run again. */
const toSee = ({ key }: FailureContext) => (key === undefined ? "running it again is safe" : "read the key to see");

/** That a failed operation may have taken effect, and what to do. */
const mayHave = (context: FailureContext) =>
  // update() is retried only when it certainly did not apply.
  `may have taken effect${context.operation === "update" ? " and was not retried" : ""}; ${toSee(context)}`;

/**
 * What to do about a failure: its cause's advice, and whether the write may have taken effect.
 *
 * @param unread whether the failure is this library's, reading the driver's answer
 */
function hintFor(
  code: string | undefined,
  context: FailureContext,
  gaveUp: GaveUp | undefined,
  unread: boolean,
): string {
  const { inDoubt = false } = context;
  if (gaveUp === "timeout") {
    const stopped = "The client stopped waiting for the answer (a client-side timeout, such as pg's query_timeout)";
    return inDoubt
      ? `${stopped}, but the statement may still commit on the server: it may have taken effect and was not retried; ${toSee(context)}. The server's statement_timeout would cancel it and roll it back instead`
      : `${stopped}, and it was not retried; the server's statement_timeout cancels a statement on the server instead`;
  }
  if (gaveUp === "abort") {
    const aborted = "It was aborted (an AbortSignal, or a cancelled query)";
    return inDoubt
      ? `${aborted} after it may have reached the server, which runs it to the end: it may have taken effect and was not retried; ${toSee(context)}`
      : `${aborted}, and it was not retried`;
  }
  if (code === undefined) {
    // No answer from the server (a connection lost, or a driver's error that cannot say whether it was sent), or
    // one this library could not read.
    if (!inDoubt) return "Check the connection string, and that the client is connected and not ended";
    return `${unread ? "Its answer could not be read" : "No answer came from the server"}, so it ${mayHave(context)}`;
  }
  const advice = adviceFor(code, context);
  // The server answered this try with a SQLSTATE; the doubt comes from a connection lost with it (57P01…) or an earlier try.
  const doubt = inDoubt ? `It ${mayHave(context)}` : "";
  return advice && doubt ? `${advice}. ${doubt}` : advice || doubt;
}

/** What a SQLSTATE asks of the user, if anything. */
function adviceFor(code: string, { operation, tableName, table, statement }: FailureContext): string {
  const schema = quotedSchemaOf(table) ?? "public";
  const migrations = `createTableSql(${JSON.stringify(tableName)})`;
  switch (code) {
    case "42P01":
      return `Run ${migrations} in your migrations, or storage.createTable()`;
    case "42501":
      if (operation !== "createTable" && statement === undefined)
        return `GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} to this role`;
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
      return "PostgreSQL's JSON functions cannot read U+0000 in a string; update() merges such values in JavaScript, and write() stores them";
    case "57014":
      return (
        "The server cancelled the statement (its statement_timeout, or a cancel request) and rolled it back; " +
        "a row lock held by another transaction, or a busy server, can keep a statement waiting that long"
      );
    case "55P03":
      return "The server stopped waiting for a lock (its lock_timeout) and rolled the statement back; another transaction holds the row";
    case "25006":
      return "Connected to a read-only server: a standby, or a primary demoted by a failover; point the connection at the primary";
    case "57P03":
      return "The server is starting up, shutting down, or a standby not accepting connections; if a failover is under way, point the connection at the new primary";
  }
  return "";
}
