import { StorageOptionError } from "./errors.ts";
import type { KeyBuilderOption } from "./keys.ts";
import { DEFAULT_TABLE_NAME, quoteTableName, quotedSchemaOf, tableDdl } from "./table.ts";

/** Options of {@link migrateFromStoragePsqlSql}. */
export interface StoragePsqlMigrationOptions {
  /** The `tableName` you gave `PsqlAdapter.create()` of `@grammyjs/storage-psql`. Defaults to `sessions`, its documented name. */
  from?: string | undefined;
  /** The `tableName` of the `PostgresStorage` that takes over. Defaults to `grammy_sessions`, as the storage does. */
  to?: string | undefined;
  /**
   * The storage's `keyBuilder`, when it has one: only a prefix can be added in
   * SQL, so this must be `prefixKeys(…)` (or a builder with the same `prefix`
   * whose `build(key)` is `prefix + key`). A function runs only in JavaScript
   * and is refused: copy such sessions with storage-psql's `read()` and the
   * storage's `write()` instead.
   */
  keyBuilder?: KeyBuilderOption | undefined;
}

/**
 * The SQL that moves sessions from `@grammyjs/storage-psql` to a
 * `PostgresStorage`, as one statement (a `DO` block) to run once, before the
 * bot switches adapters: in a deploy step, a migration tool, `psql`, or through
 * any client (`await pool.query(sql)`, `sql.unsafe(sql)` on postgres.js).
 *
 * It creates the storage's table when it is missing, then copies every row:
 * keys as they are (or behind the key builder's prefix), values as the JSON text
 * storage-psql wrote, so each session reads back exactly as storage-psql read it,
 * including grammY's `enhanceStorage` envelopes (`{ __d, v, e }`), whose
 * versions and expiry keep working with `enhanceStorage` around the new storage.
 * A session the target table already holds is kept, never overwritten (it is
 * the newer one), so running it again copies nothing twice. Rows whose value is
 * SQL NULL hold no session and are skipped. A value that is not JSON stops the
 * whole migration, with nothing copied, and an error (SQLSTATE 22P02) naming its
 * key. The source table is left as it is.
 *
 * Values are copied as plain JSON: the storage must use the default codec,
 * `JSON` or `jsonWithDates`, not one with a format of its own.
 *
 * @example
 * ```ts
 * await pool.query(migrateFromStoragePsqlSql({ from: "sessions" }));
 * const storage = new PostgresStorage({ client: pool }); // grammy_sessions
 * ```
 * @returns one `DO` statement, without parameters
 * @throws StorageOptionError when a table name is invalid, both are the same,
 * or the key builder is not a prefix
 */
export function migrateFromStoragePsqlSql(options: StoragePsqlMigrationOptions = {}): string {
  const from = quoteTableName(options.from ?? "sessions", "from");
  const to = quoteTableName(options.to ?? DEFAULT_TABLE_NAME, "to");
  if (from === to) throw new StorageOptionError("to", `from and to are both ${from}: copy into a table of its own`);
  const prefix = prefixOf(options.keyBuilder);
  const key = prefix === "" ? "key" : `${literal(prefix)} || key`;
  const schema = quotedSchemaOf(to);
  // Table names are checked to letters, digits, "_" and "-", so they can stand in SQL literals too.
  return `DO $migrate$
DECLARE
  copied bigint;
  bad record;
BEGIN
  IF to_regclass('${to}') IS NULL THEN
    ${schema === undefined ? "" : `IF to_regnamespace('${schema}') IS NULL THEN CREATE SCHEMA ${schema}; END IF;\n    `}${tableDdl(to).replaceAll("\n", "\n    ")};
  END IF;
  BEGIN
    INSERT INTO ${to} (key, value)
      SELECT ${key}, value::json FROM ${from} WHERE value IS NOT NULL
      ON CONFLICT (key) DO NOTHING;
    GET DIAGNOSTICS copied = ROW_COUNT;
  EXCEPTION WHEN invalid_text_representation THEN
    FOR bad IN SELECT key, value FROM ${from} WHERE value IS NOT NULL LOOP
      BEGIN
        PERFORM bad.value::json;
      EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'the value of key "%" in ${from} is not JSON; nothing was copied to ${to}', bad.key
          USING ERRCODE = 'invalid_text_representation', DETAIL = SQLERRM;
      END;
    END LOOP;
    RAISE;
  END;
  RAISE NOTICE 'copied % sessions from ${from} to ${to}', copied;
END
$migrate$`;
}

/** The prefix a key builder puts before every key, or why it cannot be used in SQL. */
function prefixOf(keyBuilder: KeyBuilderOption | undefined): string {
  if (keyBuilder === undefined) return "";
  const builder = typeof keyBuilder === "object" && keyBuilder !== null ? keyBuilder : undefined;
  const prefix = builder?.prefix;
  if (typeof prefix !== "string" || !["42", "-100123:7"].every((key) => builder?.build(key) === prefix + key)) {
    throw new StorageOptionError(
      "keyBuilder",
      "keyBuilder: SQL can only put a prefix before each key, as prefixKeys() does; a function or other key builder runs only " +
        "in JavaScript, so copy those sessions with storage-psql's read() and this storage's write()",
    );
  }
  if (/\0|\p{Cs}/u.test(prefix))
    throw new StorageOptionError("keyBuilder", "keyBuilder: the prefix contains U+0000 or a lone surrogate");
  return prefix;
}

/** A string literal that means the same whatever standard_conforming_strings is, and holds no `$` to end the block. */
function literal(text: string): string {
  return `E'${text.replace(/[\\'$]/g, (char) => `\\x${char.charCodeAt(0).toString(16)}`)}'`;
}
