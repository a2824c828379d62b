import { StorageOptionError } from "./errors.ts";

/** The table used when `tableName` is not given. */
export const DEFAULT_TABLE_NAME = "grammy_sessions";

// PostgreSQL silently truncates longer identifiers, which would let two
// different names land in one table.
const MAX_IDENTIFIER_BYTES = 63;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * Checks a table name (`table` or `schema.table`) and returns it quoted, ready
 * to be placed in SQL. Names are case-sensitive and used exactly as written.
 *
 * @param option the option that gave the name, as errors name it
 * @throws StorageOptionError when the name is empty, has more than one dot,
 * or a part is longer than 63 bytes or holds anything but letters, digits, `_` and `-`
 */
export function quoteTableName(tableName: unknown, option = "tableName"): string {
  const refuse = (problem: string) => new StorageOptionError(option, `${option} ${show(tableName)} ${problem}`);
  if (typeof tableName !== "string" || tableName === "") {
    throw refuse('must be a non-empty string like "sessions" or "app.sessions"');
  }
  const parts = tableName.split(".");
  if (parts.length > 2) throw refuse('has more than one dot; write "table" or "schema.table"');
  for (const part of parts) {
    if (!IDENTIFIER.test(part)) {
      throw refuse('is not allowed: use letters A-Z, digits, "_" and "-", starting with a letter or "_"');
    }
    if (part.length > MAX_IDENTIFIER_BYTES) {
      throw refuse(`is too long: PostgreSQL keeps only ${MAX_IDENTIFIER_BYTES} characters of a name`);
    }
  }
  return `"${parts.join('"."')}"`;
}

/** The schema part of a quoted `"schema"."table"` name, if it has one. */
export function quotedSchemaOf(quotedTable: string): string | undefined {
  const dot = quotedTable.indexOf('"."');
  return dot === -1 ? undefined : quotedTable.slice(0, dot + 1);
}

/** A refused name as messages show it. */
const show = (value: unknown) => (typeof value === "string" ? JSON.stringify(value) : String(value));

/**
 * The SQL that creates the session table, for migration tools (pass
 * `createTable: false` to the storage when migrations own the schema).
 * The key column sorts bytewise (`COLLATE "C"`) so that every key of one
 * prefix lies in one contiguous index range. The value column is `json`, which
 * keeps the codec's text exactly as written: a read returns the very text a
 * write of the same value produces, which is what lets unchanged writes be skipped.
 *
 * When the name has a schema (`app.sessions`), the SQL is two statements in one
 * string, `CREATE SCHEMA IF NOT EXISTS "app";` then the table (the storage's
 * own lazy creation tries the table first, and creates the schema only when it
 * finds it missing): run it where several statements may be sent at once
 * (pg's `query(text)` without parameters, PGlite's `exec`, psql, migration files).
 * PostgreSQL checks CREATE on the database even for a schema that exists; a role
 * without it can create the schema beforehand and call `storage.createTable()`,
 * which creates a schema only when it is missing.
 *
 * @param tableName `table` or `schema.table`; defaults to `grammy_sessions`
 * @returns a `CREATE TABLE IF NOT EXISTS` statement, after `CREATE SCHEMA IF NOT EXISTS` when a schema is named
 */
export function createTableSql(tableName: string = DEFAULT_TABLE_NAME): string {
  const quoted = quoteTableName(tableName);
  const schema = quotedSchemaOf(quoted);
  return schema === undefined ? tableDdl(quoted) : `${schemaDdl(schema)};\n${tableDdl(quoted)}`;
}

/** The DDL for a schema name that is already quoted. */
export function schemaDdl(quotedSchema: string): string {
  return `CREATE SCHEMA IF NOT EXISTS ${quotedSchema}`;
}

/** The DDL for a table name that is already quoted. */
export function tableDdl(quotedTable: string): string {
  return `CREATE TABLE IF NOT EXISTS ${quotedTable} (
  key text COLLATE "C" PRIMARY KEY,
  value json NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz
)`;
}
