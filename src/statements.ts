import { rowsOf, textOf, type Driver, type Row, type Statement } from "./driver/clients.ts";
import { PostgresStorageError } from "./errors.ts";

/**
 * Every statement the storage sends, built once per storage from its quoted
 * table name, each with a name to prepare it under that is derived from its
 * text (so every process and storage names the same statement alike). Keys and values only ever travel as parameters; each value
 * parameter is cast to text first, because some drivers (postgres.js) would
 * otherwise serialise a string bound for a JSON type as a JSON string literal.
 */
export interface Statements {
  /**
   * `$1` key → `value` as JSON text and `msleft`, the milliseconds before it
   * expires (null: never; without a TTL of the storage's own just 0 for any
   * expiry, which is all it needs to know), when a live row exists.
   */
  readonly read: Statement;
  /** `$1` key → one row (of no columns) when a live row exists. */
  readonly has: Statement;
  /** `$1` key, `$2` encoded value, with a TTL `$3` milliseconds to live: insert or overwrite. */
  readonly write: Statement;
  /** `$1` key. */
  readonly delete: Statement;
  /**
   * `$1` key, `$2` encoded patch (and TTL): merges the patch into the stored
   * object in the database, or stores it alone when there is no live row →
   * `value`, the merged JSON text. No row comes back when the stored value is
   * not a JSON object (or, with `dateTags`, is a tagged Date).
   *
   * The merge keeps the stored text of every field and the order of the
   * fields, as `{ ...stored, ...patch }` would (jsonb would sort them), and
   * writes it as JSON.stringify does, so that a session read back after an
   * update and written back unchanged still matches its stored text.
   */
  readonly merge: Statement;
  /** `$1` key, `$2` encoded value (and TTL): inserts it unless a live row exists → a row (of no columns) when it did. */
  readonly insertIfAbsent: Statement;
  /** `$1` key, `$2` encoded value (and TTL), last `$n` the text expected now: replaces it only if so → a row (of no columns) when it did. */
  readonly replaceIf: Statement;
  /**
   * The same as {@link replaceIf}, but a row that holds the text expected and
   * has expired (while its handler ran, and prune() has not deleted it yet) is
   * replaced too: a write-back against the text its read found, and the renewal
   * of one unchanged → a row when it did.
   */
  readonly replaceIfExpiredToo: Statement;
  /** A page of live rows in key order: `$1` lower key, `[$2]` upper bound, last `$n` page size. */
  page(options: PageQuery): Statement;
  /**
   * Deletes the expired rows in `$2` blocks of the table from block `$1`, `$3`
   * the quoted table name → `deleted`, and `more`, 1 when blocks lie beyond (a number, which every client answers
   * alike, where a boolean may come back as `"t"`).
   */
  readonly prune: Statement;
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

// A cast keeps its column's name: `value::text` comes back as `value`.
// Expiry is judged on the database's clock, not the function's: serverless
// instances drift.
const live = (alias = "") => `(${alias}expires_at IS NULL OR ${alias}expires_at > now())`;

// The stored object's fields (k, v) in their order (o), each patched one with the patch's value, then the patch's
// new fields in theirs (NULLs sort last): as JSON text with no spaces, which to_json() escapes as JSON.stringify does.
const MERGED =
  `(SELECT ('{' || coalesce(string_agg(to_json(coalesce(s.k, p.k))::text || ':' || coalesce(p.v, s.v)::text, ',' ` +
  `ORDER BY s.o, p.o), '') || '}')::json FROM json_each(t.value) WITH ORDINALITY s(k, v, o) ` +
  `FULL JOIN json_each(EXCLUDED.value) WITH ORDINALITY p(k, v, o) ON s.k = p.k)`;
// jsonWithDates stores a Date as this one-key object: a Date, not an object of fields to merge into.
// (Only asked of objects: PostgreSQL does not promise to evaluate AND's operands in order.)
// (An object of no keys aggregates to NULL, which would make the comparison NULL: coalesced to no keys.)
const TAGGED_DATE = `CASE WHEN json_typeof(t.value) = 'object' THEN coalesce((SELECT array_agg(k) FROM json_object_keys(t.value) k), '{}') = ARRAY['$date'] ELSE false END`;

const NO_COLUMNS: Row = Object.freeze({});
const UNCOUNTED =
  "the client answered a change without the count of changed rows its earlier answers carried (pg's rowCount, " +
  "postgres.js's count); a Pool's Client class, or a wrapper, must pass the driver's result on whole";

/**
 * The merge's rows, their text checked within the statement's try: the change ran, so an answer that cannot be read
 * leaves it in doubt, as a lost one does.
 */
function withMergedText(result: unknown): Row[] {
  const rows = rowsOf(result);
  for (const row of rows) textOf(row, "value");
  return rows;
}

/** What shapes a storage's statements besides its table. */
export interface StatementOptions {
  /** Whether rows get an expiry; without, the statements leave out its arithmetic, which costs a read a tenth of its time. */
  readonly withTtl?: boolean | undefined;
  /** Whether the codec stores a Date as a tagged object (`jsonWithDates`), which `update()` must not merge into. */
  readonly dateTags?: boolean | undefined;
  /** The driver, which reads how many rows a statement changed from its client's answer when the client says. */
  readonly driver?: { readonly changedRows: Driver["changedRows"] } | undefined;
}

/** The statements for one table name that is already validated and quoted. */
export function statementsFor(
  table: string,
  { withTtl = false, dateTags = false, driver }: StatementOptions = {},
): Statements {
  const changedRows = driver?.changedRows;
  // Whether an answer of the client has said how many rows its statement changed: a client of pg's kind may still
  // hand back results of another shape (a Pool's own `Client` class, a wrapper), which then never do.
  let counts = false;
  const learning =
    changedRows &&
    ((result: unknown): Row[] => {
      counts ||= changedRows(result) !== undefined;
      return rowsOf(result);
    });
  const named = new Map<string, Statement>();
  // Built on first use and kept: a storage sends a handful of distinct statements.
  const statement = (text: string, answer = learning): Statement => {
    let found = named.get(text);
    if (found === undefined) named.set(text, (found = { text, name: `gps_${hash(text)}`, answer }));
    return found;
  };
  const expires = withTtl ? "now() + $3::float8 * interval '1 millisecond'" : "NULL";
  const byKey = `FROM ${table} WHERE key = $1`;
  // A compare-and-set answers a row of no columns per row changed. Once the client's answers count the rows a
  // statement changed, it goes alone and those rows are made from its count; until then the statement returns them,
  // with no columns: a column, even RETURNING 1's, costs pg a row description to read and an object per row.
  const counted = (change: string): (() => Statement) => {
    const returning = statement(`WITH changed AS (${change} RETURNING 1) SELECT FROM changed`);
    if (changedRows === undefined) return () => returning;
    const alone = statement(change, (result) => {
      const changed = changedRows(result);
      if (changed === undefined) throw new PostgresStorageError(UNCOUNTED);
      return new Array<Row>(changed).fill(NO_COLUMNS);
    });
    return () => (counts ? alone : returning);
  };
  const upsert = (set: string, tail: string) =>
    `INSERT INTO ${table} AS t (key, value, updated_at, expires_at) VALUES ($1, $2::text::json, now(), ${expires}) ` +
    `ON CONFLICT (key) DO UPDATE SET value = ${set}, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at${tail}`;
  const replace =
    `UPDATE ${table} SET value = $2::text::json, updated_at = now(), expires_at = ${expires} ` +
    `WHERE key = $1 AND value::text = $${withTtl ? 4 : 3}`;
  const insertIfAbsent = counted(upsert("EXCLUDED.value", ` WHERE NOT ${live("t.")}`));
  const replaceIf = counted(`${replace} AND ${live()}`);
  const replaceIfExpiredToo = counted(replace);
  return {
    read: statement(
      `SELECT value::text, ${withTtl ? "extract(epoch FROM expires_at - now()) * 1000" : "CASE WHEN expires_at IS NOT NULL THEN 0 END"} ` +
        `AS msleft ${byKey} AND ${live()}`,
    ),
    has: statement(`SELECT ${byKey} AND ${live()}`),
    write: statement(upsert("EXCLUDED.value", "")),
    delete: statement(`DELETE ${byKey}`),
    merge: statement(
      upsert(
        `CASE WHEN ${live("t.")} THEN ${MERGED} ELSE EXCLUDED.value END`,
        ` WHERE (json_typeof(t.value) = 'object'${dateTags ? ` AND NOT ${TAGGED_DATE}` : ""}) OR NOT ${live("t.")} ` +
          `RETURNING t.value::text`,
      ),
      withMergedText,
    ),
    get insertIfAbsent() {
      return insertIfAbsent();
    },
    get replaceIf() {
      return replaceIf();
    },
    get replaceIfExpiredToo() {
      return replaceIfExpiredToo();
    },
    page({ values, first, bounded }) {
      // COLLATE "C" keeps the order bytewise, so a prefix is one contiguous
      // range, even in a table that migrations created with another collation.
      return statement(
        `SELECT key${values ? ", value::text" : ""} FROM ${table} WHERE key ${first ? ">=" : ">"} $1 COLLATE "C"` +
          `${bounded ? ` AND key < $2 COLLATE "C"` : ""} AND ${live()} ORDER BY key COLLATE "C" LIMIT $${bounded ? 3 : 2}::int`,
      );
    },
    // A range of the table's blocks at a time, read as a sequential scan reads
    // them (a TID range scan): as fast as one DELETE of everything expired,
    // without one statement holding the rows of the whole table. Walking the
    // key index instead costs a lookup per row, two to three times as long.
    prune: statement(
      `WITH gone AS (DELETE FROM ${table} WHERE ctid >= format('(%s,0)', $1::bigint)::tid ` +
        `AND ctid < format('(%s,0)', $1::bigint + $2::int)::tid AND expires_at <= now() RETURNING 1) ` +
        `SELECT (SELECT count(*)::int FROM gone) AS deleted, ` +
        `($1::bigint + $2::int < pg_relation_size($3::regclass) / current_setting('block_size')::int)::int AS more`,
    ),
  };
}

/**
 * A 53-bit hash of a statement's text, in base 36: names that differ whenever the texts do. FNV-1a's 32 bits,
 * then 21 of a second multiplicative hash (djb2 with xor), so that two texts meet only by a 1 in 2^53 chance.
 */
function hash(text: string): string {
  let a = 0x811c9dc5;
  let b = 5381;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    a = Math.imul(a ^ code, 0x01000193);
    b = Math.imul(b, 33) ^ code;
  }
  return ((a >>> 0) * 0x200000 + (b & 0x1fffff)).toString(36);
}
