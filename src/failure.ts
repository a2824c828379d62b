import { PostgresStorageError, describe, showKey, sqlState } from "./errors.ts";
import { ClientStateError } from "./clients.ts";
import { quotedSchemaOf } from "./table.ts";
import { transience } from "./retry.ts";

/** Where an operation failed: which operation, on which key of which table. */
export interface FailureContext {
  /** The operation as the user called it: "read", "write", "create table", … */
  readonly operation: string;
  /** The grammY key, when the operation had one. */
  readonly key?: string | undefined;
  /** The table name as the user gave it. */
  readonly tableName: string;
  /** The same, quoted for SQL. */
  readonly table: string;
  /**
   * The statement that failed, when the operation runs more than one: creating
   * a table in a missing schema runs `CREATE SCHEMA` before `CREATE TABLE`.
   */
  readonly statement?: string | undefined;
}

/**
 * Turns a driver's error into a PostgresStorageError that keeps its SQLSTATE
 * and the original as `cause`, and says what to do about it. Errors that are
 * already ours pass through as they are.
 */
export function failure({ operation, key, tableName, table, statement }: FailureContext, error: unknown): PostgresStorageError {
  if (error instanceof PostgresStorageError) return error;
  const code = sqlState(error);
  const target = key === undefined ? `table ${table}` : `key ${showKey(key)} in table ${table}`;
  const hint =
    error instanceof ClientStateError
      ? "" // its message says what to do
      : operation === "update" && transience(error) === "unknown"
        ? UPDATE_IN_DOUBT
        : hintFor(code, operation, tableName, table, statement);
  return new PostgresStorageError(
    `${operation} of ${target} failed: ${describe(error)}${code ? ` (SQLSTATE ${code})` : ""}${hint ? `. ${hint}` : ""}`,
    { code, cause: error },
  );
}

const UPDATE_IN_DOUBT = "The connection broke after update() was sent, so it may have taken effect and was not retried; read the key to see";

function hintFor(code: string | undefined, operation: string, tableName: string, table: string, statement: string | undefined): string {
  const migrations = `createTableSql(${JSON.stringify(tableName)})`;
  const schema = quotedSchemaOf(table) ?? "public";
  switch (code) {
    case undefined:
      return "Check the connection string, and that the client is connected and not ended";
    case "42P01":
      return `Run ${migrations} in your migrations, or storage.createTable()`;
    case "42501":
      if (operation !== "create table") return `GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} to this role`;
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
      return "update() merges as jsonb, which cannot hold U+0000; use write()";
    default:
      return "";
  }
}
