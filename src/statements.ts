/**
 * Every statement the storage sends, built once per storage from its quoted
 * table name. Keys and values only ever travel as parameters; each parameter
 * is cast to the type it must have, because some drivers (postgres.js) would
 * otherwise serialise a string bound for `jsonb` as a JSON string literal.
 */
export interface Statements {
  /** `$1` key → `value` as JSON text, when the row exists and has not expired. */
  readonly read: string;
  /** `$1` key → one row when a live row exists. */
  readonly has: string;
  /** `$1` key, `$2` encoded value: insert or overwrite. */
  readonly write: string;
  /** `$1` key. */
  readonly delete: string;
  /** A page of live rows in key order: `$1` lower key, `[$2]` upper bound, last `$n` page size. */
  page(options: PageQuery): string;
}

/** What a page of `readAll*` selects and where it starts. */
export interface PageQuery {
  /** Select `value` too, not only `key`. */
  readonly values: boolean;
  /** The first page includes its lower bound; later pages start after the last key seen. */
  readonly first: boolean;
  /** Whether `$2` is an exclusive upper bound (the end of a key prefix). */
  readonly bounded: boolean;
}

// Rows whose expiry has passed are invisible on the database's clock, not the
// function's: serverless instances drift.
const LIVE = "(expires_at IS NULL OR expires_at > now())";

/** The statements for one table name that is already validated and quoted. */
export function statementsFor(table: string): Statements {
  return {
    read: `SELECT value::text AS value FROM ${table} WHERE key = $1::text AND ${LIVE}`,
    has: `SELECT 1 AS found FROM ${table} WHERE key = $1::text AND ${LIVE}`,
    write:
      `INSERT INTO ${table} (key, value, updated_at, expires_at) ` +
      `VALUES ($1::text, $2::text::jsonb, now(), NULL) ` +
      `ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, ` +
      `updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at`,
    delete: `DELETE FROM ${table} WHERE key = $1::text`,
    page({ values, first, bounded }) {
      // COLLATE "C" keeps the order bytewise, so a prefix is one contiguous
      // range, even in a table that migrations created with another collation.
      const columns = values ? "key, value::text AS value" : "key";
      const lower = `key ${first ? ">=" : ">"} $1::text COLLATE "C"`;
      const upper = bounded ? ` AND key < $2::text COLLATE "C"` : "";
      const limit = bounded ? "$3" : "$2";
      return (
        `SELECT ${columns} FROM ${table} WHERE ${lower}${upper} AND ${LIVE} ` +
        `ORDER BY key COLLATE "C" LIMIT ${limit}::int`
      );
    },
  };
}
