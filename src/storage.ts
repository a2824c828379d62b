import { textOf, toExecute, type Execute, type PostgresClient, type QueryParameter, type Row } from "./clients.js";
import { decode, strictJson, type Codec } from "./codec.js";
import { PostgresStorageError, StorageValidationError, showKey, sqlState } from "./errors.js";
import { failure } from "./failure.js";
import { LastKnownValues } from "./last-known.js";
import { normalizeKeyBuilder, prefixUpperBound, type KeyBuilder, type KeyBuilderOption } from "./keys.js";
import { retryPolicy, retrying, type RetryOptions, type RetryPolicy } from "./retry.js";
import { formatIssues, type StandardSchema } from "./schema.js";
import { statementsFor, type Statements } from "./statements.js";
import { DEFAULT_TABLE_NAME, quoteTableName, quotedSchemaOf, tableDdl } from "./table.js";
import { checkPatch, decodeFromRead, decodeMerged, encodeForWrite, encodePatch, type OnInvalid, type ValueRules } from "./values.js";

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
   * is `false`; the session type is inferred from it. Checking a write runs
   * the schema on the value you write, so the schema must accept its own
   * output (`z.coerce.date()` and `.default()` do; a transform from string to
   * Date does not: pass `validateOnWrite: false` for such schemas).
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
   * backoff from 50 ms. A statement of `update()` that writes is retried only
   * when it certainly did not take effect, so a patch is never written twice.
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
// Checked updates that keep losing to concurrent writers give up after this many tries.
const MAX_MERGE_ATTEMPTS = 100;
// Enough to span the read and write-back of every update a process handles at once.
const REMEMBERED_KEYS = 1000;
const REMEMBERED_CHARS = 8_000_000;

/** How to run a statement: what to do when the table does not exist yet, and whether it may run twice. */
interface RunOptions {
  /** "empty": the table's absence is the answer (nothing stored); "create": create it and run again. */
  readonly missing: "empty" | "create";
  /** Retry only failures that prove it did not run: it must not take effect twice. */
  readonly once?: boolean;
}

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
  readonly #retry: RetryPolicy;
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
    this.#retry = retryPolicy(options.retry);
    const { codec = strictJson, schema, onInvalid = "throw", millisecondsToLive: ttl = null } = options;
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
    const text = await this.#readText(key, storedKey);
    return text === undefined ? undefined : decodeFromRead(this.#rules, key, text);
  }

  /** Reads the stored text, telling `#lastKnown` what it found. */
  async #readText(key: string, storedKey: string): Promise<string | undefined> {
    const ticket = this.#lastKnown.beginRead();
    const sent = performance.now();
    const [row] = await this.#run("read", key, this.#statements.read, [storedKey], { missing: "empty" });
    const text = row === undefined ? undefined : textOf(row, "value");
    // Counted from before the read was sent, so the estimate errs early.
    const expiresAt = row?.msleft == null ? null : sent + Number(row.msleft);
    this.#lastKnown.endRead(storedKey, ticket, text, this.#renewAt(expiresAt));
    return text;
  }

  /**
   * Stores `value` under `key`, replacing what was there (and pushing its
   * expiry forward), in one `INSERT … ON CONFLICT` statement.
   *
   * grammY writes every session back after each update that touched it. When
   * this storage knows the database already holds exactly this value (it read
   * or wrote it, and no other read or write of the key in this process has
   * overlapped since), the write is skipped: a read-only update costs one
   * statement, not two. With `millisecondsToLive`, an unchanged value is still
   * written once half its time to live has passed, so sessions in use do not expire.
   *
   * @throws StorageValidationError when the value fails the schema (nothing is written)
   * @throws PostgresStorageError when the value cannot be encoded (nothing is written) or the write fails
   */
  async write(key: string, value: T): Promise<void> {
    const storedKey = this.#storedKey(key);
    const { text } = await encodeForWrite(this.#rules, key, value);
    if (this.#lastKnown.holds(storedKey, text, this.#millisecondsToLive !== null)) return;
    await this.#tracked(storedKey, async () => {
      await this.#run("write", key, this.#statements.write, this.#withTtl([storedKey, text]), { missing: "create" });
      return text;
    });
  }

  /**
   * Merges the fields of `patch` into the object stored under `key` (creating
   * it from `patch` when there is none), atomically: concurrent updates of
   * different fields never lose each other, as read-modify-write does.
   *
   * Without a schema to check, this is one statement that merges inside the
   * database. With one, the merged value must pass it before it is written, so
   * the merge happens here and is written only if the stored value is still
   * the one it was merged into (a compare-and-set, tried again when another
   * writer came first): one statement when this storage knows the stored
   * value (it read it, as grammY's session does), two otherwise. Nothing that
   * fails the schema is ever written.
   *
   * @returns the merged value, as a read would return it
   * @throws StorageValidationError when the merged value fails the schema (nothing is written)
   * @throws PostgresStorageError when the stored value is not an object, or (without a schema) the codec cannot merge in the database
   */
  async update(key: string, patch: Partial<T>): Promise<T> {
    const storedKey = this.#storedKey(key);
    checkPatch(patch);
    const checked = this.#rules.schema !== undefined && this.#rules.validateOnWrite;
    const guess = this.#lastKnown.text(storedKey);
    let merged!: T;
    await this.#tracked(storedKey, async () => {
      const result = checked ? await this.#mergeChecked(key, storedKey, patch, guess) : await this.#mergeInDatabase(key, storedKey, patch);
      merged = result.value;
      return result.text;
    });
    return merged;
  }

  async #mergeInDatabase(key: string, storedKey: string, patch: Partial<T>): Promise<{ value: T; text: string }> {
    const params = this.#withTtl([storedKey, await encodePatch(this.#rules, key, patch)]);
    const [row] = await this.#run("update", key, this.#statements.merge, params, { missing: "create", once: true });
    if (row === undefined) throw notAnObject(key);
    const text = textOf(row, "value");
    const result = await decodeMerged(this.#rules, key, text);
    if (result.issues !== undefined) {
      throw new StorageValidationError(
        `update() of key ${showKey(key)} wrote a value that fails the schema (validateOnWrite is false): ${formatIssues(result.issues)}`,
        key,
        result.issues,
      );
    }
    return { value: result.value, text };
  }

  async #mergeChecked(key: string, storedKey: string, patch: Partial<T>, guess: string | undefined): Promise<{ value: T; text: string }> {
    // `known`: the stored text this merge builds on; null when there is no row, undefined when it must be read.
    let known: string | null | undefined = guess;
    for (let attempt = 1; attempt <= MAX_MERGE_ATTEMPTS; attempt += 1) {
      known ??= (await this.#readText(key, storedKey)) ?? null;
      const previous = known === null ? {} : await decode(this.#rules.codec, known, key);
      if (typeof previous !== "object" || previous === null || Array.isArray(previous)) throw notAnObject(key);
      const next = await encodeForWrite(this.#rules, key, { ...previous, ...patch } as T);
      const params = this.#withTtl([storedKey, next.text]);
      const [done] =
        known === null
          ? await this.#run("update", key, this.#statements.insertIfAbsent, params, { missing: "create", once: true })
          : await this.#run("update", key, this.#statements.replaceIf, [...params, known], { missing: "create", once: true });
      if (done !== undefined) return next;
      // Another writer came first: merge into what it left, after a pause that spreads out contenders.
      known = undefined;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * attempt));
    }
    throw new PostgresStorageError(
      `update() of key ${showKey(key)} lost to concurrent writers ${MAX_MERGE_ATTEMPTS} times in a row; nothing was written, try again`,
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
      const [row] = await this.#run("prune", undefined, this.#statements.prune(first), [cursor, PRUNE_BATCH_SIZE], { missing: "empty" });
      const count = Number(row?.deleted ?? 0);
      deleted += count;
      if (row === undefined || count < PRUNE_BATCH_SIZE) return deleted;
      cursor = textOf(row, "last");
    }
  }

  /** Deletes the session stored under `key`; deleting a missing key is not an error. */
  async delete(key: string): Promise<void> {
    const storedKey = this.#storedKey(key);
    await this.#tracked(storedKey, async () => {
      await this.#run("delete", key, this.#statements.delete, [storedKey], { missing: "empty" });
      return undefined;
    });
  }

  /** Whether a session is stored under `key`. */
  async has(key: string): Promise<boolean> {
    const storedKey = this.#storedKey(key);
    const rows = await this.#run("has", key, this.#statements.has, [storedKey], { missing: "empty" });
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
      const value = await decodeFromRead(this.#rules, key, textOf(row, "value"));
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

  async #run(operation: string, key: string | undefined, text: string, params: QueryParameter[], options: RunOptions): Promise<Row[]> {
    const execute = () => retrying(() => this.#execute(text, params), this.#retry, options.once === true);
    try {
      return await execute();
    } catch (error) {
      if (sqlState(error) !== UNDEFINED_TABLE) throw this.#failure(operation, key, error);
      if (options.missing === "empty") return [];
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
      throw new PostgresStorageError("readAll* needs keyBuilder.parse(storedKey); add it, or use prefixKeys()");
    }
    const lower = this.#keys.prefix ?? "";
    const upper = lower === "" ? undefined : prefixUpperBound(lower);
    const pageSize = withValues ? ENTRY_PAGE_SIZE : KEY_PAGE_SIZE;
    let cursor = lower;
    for (let first = true; ; first = false) {
      const text = this.#statements.page({ values: withValues, first, bounded: upper !== undefined });
      const params = upper === undefined ? [cursor, pageSize] : [cursor, upper, pageSize];
      const rows = await this.#run("readAll", undefined, text, params, { missing: "empty" });
      for (const row of rows) {
        const key = parse.call(this.#keys, textOf(row, "key"));
        if (key !== undefined) yield [key, row];
      }
      const last = rows[rows.length - 1];
      if (last === undefined || rows.length < pageSize) return;
      cursor = textOf(last, "key");
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
    // One quick test on the hot path; the precise reason only when it fails.
    if (storedKey.length <= MAX_KEY_LENGTH && !/[\0\ud800-\udfff]/.test(storedKey)) return storedKey;
    // Drivers would turn a lone surrogate into U+FFFD, so two keys could meet in one row.
    const problem = /\0/.test(storedKey)
      ? "contains U+0000"
      : /\p{Cs}/u.test(storedKey)
        ? "contains a lone surrogate"
        : storedKey.length > MAX_KEY_LENGTH
          ? `is longer than ${MAX_KEY_LENGTH} characters`
          : "";
    if (problem !== "") throw new PostgresStorageError(`key ${showKey(key)} is refused: stored, it ${problem}`);
    return storedKey;
  }

  #failure(operation: string, key: string | undefined, error: unknown): PostgresStorageError {
    return failure({ operation, key, tableName: this.tableName, table: this.#table }, error);
  }
}

function notAnObject(key: string): PostgresStorageError {
  return new PostgresStorageError(
    `nothing was changed: update() merges into objects, and the value under key ${showKey(key)} is not one; write() it instead`,
  );
}

/** Refuses an option with a message naming it, or passes it on. */
function check<V>(value: V, valid: boolean, problem: string): V {
  if (!valid) throw new PostgresStorageError(problem);
  return value;
}
