import { toExecute, type Execute, type PostgresClient, type QueryParameter, type Row } from "./clients.js";
import { strictJson, type Codec } from "./codec.js";
import { PostgresStorageError, StorageValidationError, describe, showKey, sqlState } from "./errors.js";
import { LastKnownValues } from "./last-known.js";
import { normalizeKeyBuilder, prefixUpperBound, type KeyBuilder, type KeyBuilderOption } from "./keys.js";
import { retrying, transience, type RetryOptions } from "./retry.js";
import { formatIssues, type StandardSchema } from "./schema.js";
import { statementsFor, type Statements } from "./statements.js";
import { DEFAULT_TABLE_NAME, quoteTableName, quotedSchemaOf, tableDdl } from "./table.js";
import { decodeFromRead, decodeMerged, encodeForWrite, encodePatch, type OnInvalid, type ValueRules } from "./values.js";

/**
 * Options of {@link PostgresStorage}. Only `client` is required.
 *
 * @typeParam T the session data; inferred from `schema` when one is given
 */
export interface PostgresStorageOptions<T = unknown> {
  /**
   * The database client, as you already hold it: a `pg` Pool or Client, a
   * postgres.js `sql`, a PGlite instance, Neon's `neon()`, Pool or Client,
   * `@vercel/postgres`, or any object with `query(text, params)`.
   */
  client: PostgresClient;
  /** The table, optionally `schema.table`; case-sensitive, always quoted. Defaults to `grammy_sessions`. */
  tableName?: string | undefined;
  /** Maps grammY keys to stored keys, e.g. `prefixKeys("bot1")`. Defaults to storing keys as they are. */
  keyBuilder?: KeyBuilderOption | undefined;
  /**
   * Turns values into JSON text and back. Defaults to JSON that refuses NaN,
   * Infinity, functions and symbols (plain JSON would store null or nothing);
   * `JSON`, `superjson` and `devalue` can be passed as they are.
   */
  codec?: Codec | undefined;
  /**
   * Create the table the first time a write finds it missing (one extra
   * statement, once). Defaults to `true`; pass `false` when your migrations own
   * the schema (see `createTableSql`).
   */
  createTable?: boolean | undefined;
  /**
   * A Standard Schema (zod, valibot, arktype, …) that session values must
   * pass. Values are checked on read, and on write unless `validateOnWrite`
   * is `false`; the session type is inferred from it.
   */
  schema?: StandardSchema<T> | undefined;
  /** What a read does with a stored value that fails `schema`. Defaults to `"throw"`. */
  onInvalid?: OnInvalid<T> | undefined;
  /** Check values against `schema` before writing them. Defaults to `true`. */
  validateOnWrite?: boolean | undefined;
  /**
   * Rows expire this long after their last write, on the database's clock;
   * expired rows read as missing, and `prune()` deletes them. Defaults to never.
   */
  millisecondsToLive?: number | undefined;
  /**
   * How transient failures (lost connections, Neon's 5xx, 57P01, 40001,
   * 40P01) are retried; `false` turns retrying off. Defaults to 3 tries with
   * backoff from 50 ms. `update()` is retried only when its statement
   * certainly did not take effect, so a patch is never merged twice.
   */
  retry?: RetryOptions | false | undefined;
}

// SQLSTATEs the storage acts on.
const UNDEFINED_TABLE = "42P01";
const INVALID_SCHEMA_NAME = "3F000";
// Concurrent CREATE ... IF NOT EXISTS in separate sessions can still collide
// on the catalogs (the table, its row type, its schema); by the time these
// are raised the other creator has won.
const CREATED_CONCURRENTLY = new Set(["42P07", "42P06", "42710", "23505"]);

// Keys index in a btree, whose entries must stay under a third of a page.
const MAX_KEY_LENGTH = 512;
const KEY_PAGE_SIZE = 1000;
const ENTRY_PAGE_SIZE = 100;
const PRUNE_BATCH_SIZE = 1000;
// Enough to span the read and write-back of every update a process handles at once.
const REMEMBERED_KEYS = 1000;
const REMEMBERED_CHARS = 8_000_000;

/** What a statement does when the table does not exist yet. */
type WhenTableMissing = "answer-empty" | "create-and-retry";

/**
 * grammY session storage in PostgreSQL: implements grammY's `StorageAdapter`
 * in full, one parameterized statement per operation, and creates its table
 * lazily without spending a query to look for it.
 *
 * @typeParam T the session data; inferred from `schema` when one is given
 * @example
 * ```ts
 * const storage = new PostgresStorage({ client: neon(env.DATABASE_URL), schema: Session });
 * bot.use(session({ initial: () => ({ step: "idle" as const }), storage }));
 * ```
 */
export class PostgresStorage<T = unknown> {
  /** The table name as given, unquoted. */
  readonly tableName: string;

  readonly #execute: Execute;
  readonly #retry: RetryOptions | false;
  readonly #table: string;
  readonly #statements: Statements;
  readonly #keys: KeyBuilder;
  readonly #rules: ValueRules<T>;
  readonly #millisecondsToLive: number | null;
  readonly #createTable: boolean;
  readonly #lastKnown = new LastKnownValues(REMEMBERED_KEYS, REMEMBERED_CHARS);
  #creating: Promise<void> | undefined;

  /**
   * Checks the options; sends nothing to the database.
   *
   * @throws PostgresStorageError when an option is invalid
   */
  constructor(options: PostgresStorageOptions<T>) {
    this.#execute = toExecute(options?.client);
    this.tableName = options.tableName ?? DEFAULT_TABLE_NAME;
    this.#table = quoteTableName(this.tableName);
    this.#keys = normalizeKeyBuilder(options.keyBuilder);
    const { codec = strictJson, schema, onInvalid = "throw", millisecondsToLive: ttl = null, retry = {} } = options;
    this.#retry = retry;
    this.#rules = {
      codec: check(
        codec,
        typeof codec?.stringify === "function" && typeof codec.parse === "function",
        "codec must have stringify(value) and parse(text), as JSON and superjson do",
      ),
      schema: check(
        schema,
        schema === undefined || typeof schema?.["~standard"]?.validate === "function",
        "schema must be a Standard Schema (zod, valibot, arktype…)",
      ),
      onInvalid: check(
        onInvalid,
        onInvalid === "throw" || onInvalid === "discard" || typeof onInvalid === "function",
        'onInvalid must be "throw", "discard" or a function',
      ),
      validateOnWrite: options.validateOnWrite ?? true,
    };
    this.#millisecondsToLive = check(
      ttl,
      ttl === null || (typeof ttl === "number" && ttl > 0 && ttl < Infinity),
      "millisecondsToLive must be a positive number",
    );
    this.#statements = statementsFor(this.#table, ttl !== null);
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
    const ticket = this.#lastKnown.beginRead();
    const [row] = await this.#run("read", key, this.#statements.read, [storedKey], "answer-empty");
    if (row === undefined) return undefined;
    const text = String(row.value);
    const expiresAt = row.ms_left == null ? null : performance.now() + Number(row.ms_left);
    this.#lastKnown.endRead(storedKey, ticket, text, this.#renewAt(expiresAt));
    return decodeFromRead(this.#rules, key, text);
  }

  /**
   * Stores `value` under `key`, replacing what was there (and pushing its
   * expiry forward), in one `INSERT … ON CONFLICT` statement.
   *
   * grammY writes every session back after each update that touched it. When
   * this storage knows the database already holds exactly this value (it read
   * or wrote it, and no other write of the key has happened in this process
   * since), the write is skipped: a read-only update costs one statement, not
   * two. With `millisecondsToLive`, an unchanged value is still written once
   * half its time to live has passed, so sessions in use do not expire.
   *
   * @throws StorageValidationError when the value fails the schema (nothing is written)
   * @throws PostgresStorageError when the value cannot be encoded (nothing is written) or the write fails
   */
  async write(key: string, value: T): Promise<void> {
    const storedKey = this.#storedKey(key);
    const text = await encodeForWrite(this.#rules, key, value);
    if (this.#lastKnown.holds(storedKey, text, this.#millisecondsToLive !== null)) return;
    const params = this.#withTtl([storedKey, text]);
    await this.#tracked(storedKey, async () => {
      await this.#run("write", key, this.#statements.write, params, "create-and-retry");
      return text;
    });
  }

  /**
   * Merges the fields of `patch` into the object stored under `key`, in one
   * atomic statement: concurrent updates of different fields never lose each
   * other (as read-modify-write does). Creates the row from `patch` when there
   * is none. The merged value is checked against the schema; if it fails, the
   * previous value is put back and `StorageValidationError` is thrown.
   *
   * @returns the merged value, as a read would return it
   * @throws PostgresStorageError when the stored value is not an object, or the codec cannot merge
   */
  async update(key: string, patch: Partial<T>): Promise<T> {
    const storedKey = this.#storedKey(key);
    const text = await encodePatch(this.#rules, key, patch);
    const params = this.#withTtl([storedKey, text]);
    let merged: { value: T } | undefined;
    await this.#tracked(storedKey, async () => {
      const result = await this.#merge(key, storedKey, params);
      merged = result;
      return result.text;
    });
    return (merged as { value: T }).value;
  }

  async #merge(key: string, storedKey: string, params: QueryParameter[]): Promise<{ value: T; text: string }> {
    const [row] = await this.#run("update", key, this.#statements.update, params, "create-and-retry");
    if (row === undefined) {
      throw new PostgresStorageError(
        `nothing was changed: update() merges into objects, and the value under key ${showKey(key)} is not one; write() it instead`,
      );
    }
    const merged = String(row.value);
    const result = await decodeMerged(this.#rules, key, merged);
    if (result.issues === undefined) return { value: result.value, text: merged };
    const previous = row.previous === null ? null : String(row.previous);
    if (previous === null) {
      await this.#run("update (undo)", key, this.#statements.deleteIfUnchanged, [storedKey, merged], "answer-empty");
    } else {
      await this.#run("update (undo)", key, this.#statements.restore, [storedKey, previous, merged], "answer-empty");
    }
    throw new StorageValidationError(
      `update() of key ${showKey(key)} made a value that fails the schema (${formatIssues(result.issues)}); the previous value was put back`,
      key,
      result.issues,
    );
  }

  /**
   * Deletes expired rows, in batches of at most 1000 rows per statement, so
   * that no statement holds many locks or runs for long. Expired rows are
   * already invisible; this reclaims their space. Run it from a scheduled job
   * (on Workers, a Cron Trigger).
   *
   * @returns how many rows were deleted
   */
  async prune(): Promise<number> {
    let deleted = 0;
    let cursor = "";
    for (let first = true; ; first = false) {
      const [row] = await this.#run("prune", undefined, this.#statements.prune(first), [cursor, PRUNE_BATCH_SIZE], "answer-empty");
      const count = Number(row?.deleted ?? 0);
      deleted += count;
      if (count < PRUNE_BATCH_SIZE || typeof row?.last !== "string") return deleted;
      cursor = row.last;
    }
  }

  /** Deletes the session stored under `key`; deleting a missing key is not an error. */
  async delete(key: string): Promise<void> {
    const storedKey = this.#storedKey(key);
    await this.#tracked(storedKey, async () => {
      await this.#run("delete", key, this.#statements.delete, [storedKey], "answer-empty");
      return undefined;
    });
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

  /**
   * Every session value this storage's key builder owns, paginated like
   * {@link readAllKeys}; values that `onInvalid` discards are left out.
   */
  async *readAllValues(): AsyncGenerator<T, void, undefined> {
    for await (const [, value] of this.readAllEntries()) yield value;
  }

  /** Every `[key, value]` pair this storage's key builder owns, paginated like {@link readAllKeys}. */
  async *readAllEntries(): AsyncGenerator<[key: string, value: T], void, undefined> {
    for await (const [key, row] of this.#scan(true)) {
      const value = await decodeFromRead(this.#rules, key, String(row.value));
      if (value !== undefined) yield [key, value];
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

  /** Runs a write-like operation, telling `#lastKnown` what the database holds after it (`undefined`: not known). */
  async #tracked(storedKey: string, operation: () => Promise<string | undefined>): Promise<void> {
    const started = performance.now();
    const ticket = this.#lastKnown.beginWrite(storedKey);
    let text: string | undefined;
    try {
      text = await operation();
    } finally {
      const expiresAt = this.#millisecondsToLive === null ? null : started + this.#millisecondsToLive;
      this.#lastKnown.endWrite(storedKey, ticket, text, this.#renewAt(expiresAt));
    }
  }

  /** The parameters of a write, with the TTL when there is one. */
  #withTtl(params: QueryParameter[]): QueryParameter[] {
    return this.#millisecondsToLive === null ? params : [...params, this.#millisecondsToLive];
  }

  /** When an unchanged row expiring at `expiresAt` (local time) must be written again anyway. */
  #renewAt(expiresAt: number | null): number | null {
    return expiresAt === null ? null : expiresAt - (this.#millisecondsToLive ?? 0) / 2;
  }

  async #createNow(): Promise<void> {
    const schema = quotedSchemaOf(this.#table);
    if ((await this.#create(tableDdl(this.#table), schema)) === INVALID_SCHEMA_NAME) {
      await this.#create(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await this.#create(tableDdl(this.#table));
    }
  }

  /**
   * Runs one DDL statement; losing a creation race counts as success.
   * Answers 3F000 instead of throwing it when the schema may be created first.
   */
  async #create(ddl: string, schema?: string): Promise<string | void> {
    try {
      await retrying(() => this.#execute(ddl, []), this.#retry, false);
    } catch (error) {
      const code = sqlState(error);
      if (code !== undefined && CREATED_CONCURRENTLY.has(code)) return;
      if (code === INVALID_SCHEMA_NAME && schema !== undefined) return code;
      throw this.#failure("create table", undefined, error);
    }
  }

  async #run(operation: string, key: string | undefined, text: string, params: QueryParameter[], whenMissing: WhenTableMissing): Promise<Row[]> {
    // Every statement is safe to run twice except update()'s merge.
    const execute = () => retrying(() => this.#execute(text, params), this.#retry, operation === "update");
    try {
      return await execute();
    } catch (error) {
      if (sqlState(error) !== UNDEFINED_TABLE) throw this.#failure(operation, key, error);
      if (whenMissing === "answer-empty") return [];
      if (!this.#createTable) throw this.#failure(operation, key, error);
    }
    await this.createTable();
    try {
      return await execute();
    } catch (error) {
      throw this.#failure(operation, key, error);
    }
  }

  async *#scan(withValues: boolean): AsyncGenerator<[key: string, row: Row], void, undefined> {
    const parse = this.#keys.parse;
    if (parse === undefined) {
      throw new PostgresStorageError(
        "readAll* needs keyBuilder.parse(storedKey); add it, or use prefixKeys()",
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
    if (typeof key !== "string" || key === "") {
      throw new PostgresStorageError(
        `session keys must be strings, got ${key === "" ? "an empty one" : key === null ? "null" : typeof key}; check getSessionKey`,
      );
    }
    const storedKey: unknown = this.#keys.build(key);
    if (typeof storedKey !== "string") {
      throw new PostgresStorageError(`keyBuilder.build(${showKey(key)}) returned ${typeof storedKey}, not a string`);
    }
    // Drivers would turn a lone surrogate into U+FFFD, so two keys could meet in one row.
    if (/[\0\p{Cs}]/u.test(storedKey) || storedKey.length > MAX_KEY_LENGTH) {
      throw new PostgresStorageError(
        `key ${showKey(key)} is refused: it contains U+0000 or a lone surrogate, or is too long (over ${MAX_KEY_LENGTH} characters)`,
      );
    }
    return storedKey;
  }

  #failure(operation: string, key: string | undefined, error: unknown): PostgresStorageError {
    const code = sqlState(error);
    const target = key === undefined ? `table ${this.#table}` : `key ${showKey(key)} in table ${this.#table}`;
    const hint =
      operation === "update" && transience(error) === "unknown"
        ? "The connection broke after update() was sent, so it may have taken effect and was not retried; read the key to see"
        : hintFor(code, this.tableName, this.#table);
    return new PostgresStorageError(
      `${operation} of ${target} failed: ${describe(error)}${code ? ` (SQLSTATE ${code})` : ""}${hint ? `. ${hint}` : ""}`,
      { code, cause: error },
    );
  }
}

function hintFor(code: string | undefined, tableName: string, table: string): string {
  switch (code) {
    case undefined:
      return "Check the connection string, and that the client is connected and not ended";
    case UNDEFINED_TABLE:
      return `Run createTableSql(${JSON.stringify(tableName)}) in your migrations, or storage.createTable()`;
    case "42501":
      return `GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} to this role`;
    case "42P10":
    case "42703":
      return `The table differs from createTableSql(${JSON.stringify(tableName)})`;
    case "22P02":
      return "The codec's output must be JSON";
    case "22P05":
      return "update() merges as jsonb, which cannot hold U+0000; use write()";
    default:
      return "";
  }
}

/** Refuses an option with a message naming it, or passes it on. */
function check<V>(value: V, valid: boolean, problem: string): V {
  if (!valid) throw new PostgresStorageError(problem);
  return value;
}
