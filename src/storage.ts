import { toExecute, type Execute, type PostgresClient, type QueryParameter, type Row } from "./clients.js";
import { decode, encode, type Codec } from "./codec.js";
import { PostgresStorageError, describe, sqlState } from "./errors.js";
import { normalizeKeyBuilder, prefixUpperBound, type KeyBuilder, type KeyBuilderOption } from "./keys.js";
import { statementsFor, type Statements } from "./statements.js";
import { DEFAULT_TABLE_NAME, quoteTableName, quotedSchemaOf, tableDdl } from "./table.js";

/** Options of {@link PostgresStorage}. Only `client` is required. */
export interface PostgresStorageOptions {
  /**
   * The database client, as you already hold it: a `pg` Pool or Client, a
   * postgres.js `sql`, a PGlite instance, Neon's `neon()`, Pool or Client,
   * `@vercel/postgres`, or any object with `query(text, params)`.
   */
  client: PostgresClient;
  /** The table, optionally `schema.table`; case-sensitive, always quoted. Defaults to `grammy_sessions`. */
  tableName?: string;
  /** Maps grammY keys to stored keys, e.g. `prefixKeys("bot1")`. Defaults to storing keys as they are. */
  keyBuilder?: KeyBuilderOption;
  /** Turns values into JSON text and back. Defaults to `JSON`; `superjson` and `devalue` work as they are. */
  codec?: Codec;
  /**
   * Create the table the first time a write finds it missing (one extra
   * statement, once). Defaults to `true`; pass `false` when your migrations own
   * the schema (see `createTableSql`).
   */
  createTable?: boolean;
}

// SQLSTATEs the storage acts on.
const UNDEFINED_TABLE = "42P01";
const INVALID_SCHEMA_NAME = "3F000";
// Concurrent CREATE ... IF NOT EXISTS in separate sessions can still collide
// on the catalogs; by the time these are raised the other creator has won.
const CREATED_CONCURRENTLY = new Set(["42P07", "42P06", "23505"]);

const KEY_PAGE_SIZE = 1000;
const ENTRY_PAGE_SIZE = 100;

/** What a statement does when the table does not exist yet. */
type WhenTableMissing = "answer-empty" | "create-and-retry";

/**
 * grammY session storage in PostgreSQL: implements grammY's `StorageAdapter`
 * in full, one parameterized statement per operation, and creates its table
 * lazily without spending a query to look for it.
 *
 * @typeParam T the session data
 * @example
 * ```ts
 * const storage = new PostgresStorage<SessionData>({ client: new pg.Pool() });
 * bot.use(session({ initial: () => ({ count: 0 }), storage }));
 * ```
 */
export class PostgresStorage<T = unknown> {
  /** The table name as given, unquoted. */
  readonly tableName: string;

  readonly #execute: Execute;
  readonly #table: string;
  readonly #statements: Statements;
  readonly #keys: KeyBuilder;
  readonly #codec: Codec;
  readonly #createTable: boolean;
  #creating: Promise<void> | undefined;

  /**
   * Checks the options; sends nothing to the database.
   *
   * @throws PostgresStorageError when an option is invalid
   */
  constructor(options: PostgresStorageOptions) {
    if (typeof options !== "object" || options === null) {
      throw new PostgresStorageError("new PostgresStorage(options) needs an options object with a client");
    }
    this.#execute = toExecute(options.client);
    this.tableName = options.tableName ?? DEFAULT_TABLE_NAME;
    this.#table = quoteTableName(this.tableName);
    this.#statements = statementsFor(this.#table);
    this.#keys = normalizeKeyBuilder(options.keyBuilder);
    this.#codec = options.codec ?? JSON;
    if (typeof this.#codec?.stringify !== "function" || typeof this.#codec.parse !== "function") {
      throw new PostgresStorageError("codec must have stringify(value) and parse(text), as JSON, superjson and devalue do");
    }
    this.#createTable = options.createTable ?? true;
  }

  /**
   * Reads the session stored under `key`.
   *
   * @returns the value, or `undefined` when there is none (or the table does not exist yet)
   * @throws PostgresStorageError when the read fails; it never resolves to `undefined` on an error,
   * because grammY would then replace the stored session with a fresh one
   */
  async read(key: string): Promise<T | undefined> {
    const storedKey = this.#storedKey(key);
    const [row] = await this.#run("read", key, this.#statements.read, [storedKey], "answer-empty");
    return row === undefined ? undefined : (decode(this.#codec, String(row.value), key) as T);
  }

  /**
   * Stores `value` under `key`, replacing what was there, in one `INSERT … ON CONFLICT` statement.
   *
   * @throws PostgresStorageError when the value cannot be encoded (nothing is written) or the write fails
   */
  async write(key: string, value: T): Promise<void> {
    const storedKey = this.#storedKey(key);
    const text = encode(this.#codec, value, key);
    await this.#run("write", key, this.#statements.write, [storedKey, text], "create-and-retry");
  }

  /** Deletes the session stored under `key`; deleting a missing key is not an error. */
  async delete(key: string): Promise<void> {
    const storedKey = this.#storedKey(key);
    await this.#run("delete", key, this.#statements.delete, [storedKey], "answer-empty");
  }

  /** Whether a session is stored under `key`. */
  async has(key: string): Promise<boolean> {
    const storedKey = this.#storedKey(key);
    const rows = await this.#run("has", key, this.#statements.has, [storedKey], "answer-empty");
    return rows.length > 0;
  }

  /**
   * Every grammY key this storage's key builder owns, in key order, fetched
   * page by page so memory stays constant however large the table is.
   */
  async *readAllKeys(): AsyncGenerator<string, void, undefined> {
    for await (const [key] of this.#scan(false)) yield key;
  }

  /** Every session value this storage's key builder owns, paginated like {@link readAllKeys}. */
  async *readAllValues(): AsyncGenerator<T, void, undefined> {
    for await (const [key, row] of this.#scan(true)) yield decode(this.#codec, String(row.value), key) as T;
  }

  /** Every `[key, value]` pair this storage's key builder owns, paginated like {@link readAllKeys}. */
  async *readAllEntries(): AsyncGenerator<[key: string, value: T], void, undefined> {
    for await (const [key, row] of this.#scan(true)) {
      yield [key, decode(this.#codec, String(row.value), key) as T];
    }
  }

  /**
   * Creates the table (and its schema) if it does not exist. Idempotent, and
   * safe to run from many processes at once. Never needed with
   * `createTable: true`; useful at deploy time when it is `false`.
   */
  createTable(): Promise<void> {
    this.#creating ??= this.#createNow().finally(() => {
      this.#creating = undefined;
    });
    return this.#creating;
  }

  async #createNow(): Promise<void> {
    try {
      await this.#execute(tableDdl(this.#table), []);
    } catch (error) {
      const code = sqlState(error);
      if (code !== undefined && CREATED_CONCURRENTLY.has(code)) return;
      const schema = quotedSchemaOf(this.#table);
      if (code === INVALID_SCHEMA_NAME && schema !== undefined) {
        await this.#createSchema(schema);
        return this.#createNow();
      }
      throw this.#failure("create table", undefined, error);
    }
  }

  async #createSchema(schema: string): Promise<void> {
    try {
      await this.#execute(`CREATE SCHEMA IF NOT EXISTS ${schema}`, []);
    } catch (error) {
      const code = sqlState(error);
      if (code === undefined || !CREATED_CONCURRENTLY.has(code)) {
        throw this.#failure("create schema", undefined, error);
      }
    }
  }

  async #run(operation: string, key: string | undefined, text: string, params: QueryParameter[], whenMissing: WhenTableMissing): Promise<Row[]> {
    try {
      return await this.#execute(text, params);
    } catch (error) {
      if (sqlState(error) !== UNDEFINED_TABLE) throw this.#failure(operation, key, error);
      if (whenMissing === "answer-empty") return [];
      if (!this.#createTable) throw this.#failure(operation, key, error);
    }
    await this.createTable();
    try {
      return await this.#execute(text, params);
    } catch (error) {
      throw this.#failure(operation, key, error);
    }
  }

  async *#scan(withValues: boolean): AsyncGenerator<[key: string, row: Row], void, undefined> {
    const parse = this.#keys.parse;
    if (parse === undefined) {
      throw new PostgresStorageError(
        "readAllKeys, readAllValues and readAllEntries need keyBuilder.parse(storedKey) to turn stored keys " +
          "back into grammY keys; give your key builder a parse method, or use prefixKeys()",
      );
    }
    const lower = this.#keys.prefix ?? "";
    const upper = lower === "" ? undefined : prefixUpperBound(lower);
    const pageSize = withValues ? ENTRY_PAGE_SIZE : KEY_PAGE_SIZE;
    let cursor = lower;
    for (let first = true; ; first = false) {
      const text = this.#statements.page({ values: withValues, first, bounded: upper !== undefined });
      const params = upper === undefined ? [cursor, pageSize] : [cursor, upper, pageSize];
      const rows = await this.#run("readAll", undefined, text, params, "answer-empty");
      for (const row of rows) {
        const key = parse.call(this.#keys, String(row.key));
        if (key !== undefined) yield [key, row];
      }
      const last = rows[rows.length - 1];
      if (last === undefined || rows.length < pageSize) return;
      cursor = String(last.key);
    }
  }

  #storedKey(key: unknown): string {
    if (typeof key !== "string") {
      throw new PostgresStorageError(
        `session keys must be strings, got ${key === null ? "null" : typeof key}; check your getSessionKey`,
      );
    }
    const storedKey: unknown = this.#keys.build(key);
    if (typeof storedKey !== "string") {
      throw new PostgresStorageError(`keyBuilder.build(${JSON.stringify(key)}) returned ${typeof storedKey}, not a string`);
    }
    if (storedKey.includes("\0")) {
      throw new PostgresStorageError(
        `key ${JSON.stringify(key)} contains the character U+0000, which PostgreSQL text cannot hold; remove it from your session keys`,
      );
    }
    return storedKey;
  }

  #failure(operation: string, key: string | undefined, error: unknown): PostgresStorageError {
    const code = sqlState(error);
    const target = key === undefined ? `table ${this.#table}` : `key ${JSON.stringify(key)} in table ${this.#table}`;
    const hint = hintFor(code, this.tableName, this.#table);
    return new PostgresStorageError(
      `${operation} of ${target} failed: ${describe(error)}${code ? ` (SQLSTATE ${code})` : ""}${hint ? `. ${hint}` : ""}`,
      { code, cause: error },
    );
  }
}

function hintFor(code: string | undefined, tableName: string, table: string): string {
  switch (code) {
    case undefined:
      return "The statement may not have reached the database: check the connection string, the network, and that the client is connected and not ended";
    case UNDEFINED_TABLE:
      return `The table does not exist and createTable is false: run createTableSql(${JSON.stringify(tableName)}) in your migrations or call storage.createTable()`;
    case "42501":
      return `The database role lacks a privilege: GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} (and CREATE on its schema for automatic table creation)`;
    case "22P02":
      return "The codec's output is not valid JSON, which the jsonb value column requires";
    case "22P05":
      return "jsonb cannot hold the character U+0000 inside strings; remove it from the value";
    case "22021":
      return "The text is not valid UTF-8 or contains U+0000";
    default:
      return "";
  }
}
