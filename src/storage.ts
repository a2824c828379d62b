import { rowsOf, textOf, toDriver, type Connection, type Driver, type PostgresClient, type QueryParameter, type Row, type Statement } from "./clients.ts";
import { KeyContext, decode, strictJson, type Codec } from "./codec.ts";
import { PostgresStorageError, showKey, sqlState } from "./errors.ts";
import { failure } from "./failure.ts";
import { normalizeKeyBuilder, prefixUpperBound, type KeyBuilder, type KeyBuilderOption } from "./keys.ts";
import { retryAfter, retryPolicy, retrying, type RetryOptions, type RetryPolicy } from "./retry.ts";
import type { StandardSchema } from "./schema.ts";
import { statementsFor, type Statements } from "./statements.ts";
import { DEFAULT_TABLE_NAME, quoteTableName, quotedSchemaOf, tableDdl } from "./table.ts";
import { checkPatch, decodeFromRead, encodeForWrite, encodePatch, mergeFields, notAnObject, setsAField, type OnInvalid, type ValueRules } from "./values.ts";
import { WriteSkips, type ReadOutcome } from "./write-skips.ts";

/**
 * Options of {@link PostgresStorage}. Only `client` is required.
 *
 * @typeParam T the session data; inferred from `schema` when one is given
 */
export interface PostgresStorageOptions<T = unknown> {
  /**
   * The database client, as you already hold it: a `pg` Pool or Client, a
   * postgres.js `sql`, Bun's `SQL`, a PGlite instance, Neon's `neon()`, Pool
   * or Client, `@vercel/postgres`, or any object with `query(text, params)`.
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
   * output (`.default()` does; a transform from string to number does not:
   * pass `validateOnWrite: false` for such schemas).
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
  /**
   * Prepare statements where the client can: pg, Neon and `@vercel/postgres`
   * Pools and Clients (named after a hash of their text), and postgres.js.
   * PostgreSQL then parses and plans each statement once per connection
   * instead of on every call. Defaults to `true`. Behind a pooler that does not
   * keep prepared statements (PgBouncer in transaction mode before 1.21, say),
   * a pg-style client's first statement that misses its preparation runs again
   * unprepared, and no storage on that client prepares any more, without
   * failing a call. postgres.js prepares again on its own and cannot fall back:
   * behind such a pooler create it with `postgres(url, { prepare: false })`.
   * Bun's `SQL` prepares as its own `prepare` option says (this one does not
   * apply to it): behind such a pooler use `new SQL({ url, prepare: false })`.
   */
  prepare?: boolean | undefined;
}

// SQLSTATEs the storage acts on.
const UNDEFINED_TABLE = "42P01";
const INVALID_SCHEMA_NAME = "3F000";
// A pooler that hands each transaction another server connection loses
// prepared statements: there the statement "does not exist", or another
// client's of the same name "already exists". Either way it did not run.
const PREPARED_STATEMENT_LOST = new Set(["26000", "42P05"]);
// Clients behind such a pooler, so that a storage created later on one (one per request, say) starts unprepared.
const LOST_PREPARATIONS = new WeakSet<object>();
// Concurrent CREATE ... IF NOT EXISTS in separate sessions can still collide
// on the catalogs (the table, its row type, its schema); by the time these
// are raised the other creator has won.
const CREATED_CONCURRENTLY = new Set(["42P07", "42P06", "42710", "23505"]);

// Keys index in a btree, whose entries must stay under a third of a page.
const MAX_KEY_LENGTH = 512;
const KEY_PAGE_SIZE = 1000;
const ENTRY_PAGE_SIZE = 100;
const PRUNE_BLOCKS = 256;
// Checked updates that keep losing to concurrent writers give up after this many tries.
const MAX_MERGE_ATTEMPTS = 100;
// Enough to span the read and write-back of every update a process handles at once.
const REMEMBERED_KEYS = 1000;
const REMEMBERED_CHARS = 8_000_000;
// grammY writes a session back when its handler returns; handlers take well
// under this. A write-back after a slower handler is simply written.
const SKIP_WINDOW_MS = 5_000;

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

  readonly #driver: Driver;
  readonly #client: object;
  #prepare: boolean;
  readonly #retry: RetryPolicy;
  readonly #table: string;
  readonly #statements: Statements;
  readonly #keys: KeyBuilder;
  readonly #rules: ValueRules<T>;
  readonly #millisecondsToLive: number | null;
  readonly #createTable: boolean;
  readonly #skips = new WriteSkips({ maxKeys: REMEMBERED_KEYS, maxChars: REMEMBERED_CHARS, windowMs: SKIP_WINDOW_MS });
  #creating: Promise<void> | undefined;

  /**
   * Checks the options; sends nothing to the database.
   *
   * @throws PostgresStorageError when an option is invalid
   */
  constructor(options: PostgresStorageOptions<T>) {
    this.#driver = toDriver(options?.client);
    this.#client = options.client;
    this.#prepare = (options.prepare ?? true) && this.#driver.prepares && !LOST_PREPARATIONS.has(this.#client);
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
    const at = this.#context(key);
    const { value } = await this.#skips.observeRead(at.key, async () => {
      const found = await this.#fetch(at);
      // Decoded inside the observed read, so that a value that fails to decode arms no skip.
      return { ...found, value: found.text === undefined ? undefined : await decodeFromRead(this.#rules, at, found.text) };
    });
    return value;
  }

  /** Runs the read statement: the stored text, and for how long writing it back unchanged needs no statement. */
  async #fetch(at: KeyContext): Promise<ReadOutcome> {
    const [row] = await this.#run("read", at.grammyKey, this.#statements.read, [at.key], { missing: "empty" });
    if (row === undefined) return { text: undefined, skippableMs: 0 };
    const msLeft = row.msleft == null ? null : Number(row.msleft);
    const ttl = this.#millisecondsToLive;
    // Without a TTL of its own, a write clears any expiry the row has; with one, it renews an expiry half-way through.
    const skippableMs = ttl === null ? (msLeft === null ? Infinity : 0) : msLeft === null ? 0 : msLeft - ttl / 2;
    return { text: textOf(row, "value"), skippableMs };
  }

  /**
   * Stores `value` under `key`, replacing what was there (and pushing its
   * expiry forward), in one `INSERT … ON CONFLICT` statement. When it
   * resolves, the value is in the database: a later read, in any process,
   * sees it unless another write, update or delete of the key came after it
   * or overlapped it (or the row expired).
   *
   * One write is answered without a statement: grammY's write-back of a
   * session that this storage read less than 5 seconds before, unchanged, with
   * no other operation of the key in this process since (and no other read
   * overlapping that read). So a read-only update
   * costs one statement, not two, and a change another process made to the
   * session meanwhile is kept rather than overwritten by the stale copy. With
   * `millisecondsToLive`, such a write-back is still sent once half the row's
   * time to live has passed, so sessions in use do not expire.
   *
   * @throws StorageValidationError when the value fails the schema (nothing is written)
   * @throws PostgresStorageError when the value cannot be encoded (nothing is written) or the write fails
   */
  async write(key: string, value: T): Promise<void> {
    const at = this.#context(key);
    // Taken before encoding, so that a write refused there uses the skip up too.
    const unchanged = this.#skips.takeSkip(at.key);
    const { text } = await encodeForWrite(this.#rules, at, value);
    if (text === unchanged) return;
    await this.#skips.observeWrite(at.key, async () => {
      await this.#run("write", key, this.#statements.write, this.#withTtl([at.key, text]), { missing: "create" });
      return text;
    });
  }

  /**
   * Merges the fields of `patch` into the object stored under `key` (creating
   * it from `patch` when there is none), atomically: concurrent updates of
   * different fields never lose each other, as read-modify-write does. The
   * merge is shallow; a field the patch sets to `undefined` is left as it is
   * (set it to `null`, or `write()` the whole value, to clear it). A patch
   * that sets no field writes nothing and creates no row.
   *
   * The stored value is taken exactly as `read()` would return it: with a
   * schema, a value that fails it is handled by `onInvalid` (`"throw"`
   * rejects and writes nothing, `"discard"` merges into nothing, a repair
   * function's result is merged into).
   *
   * Without a schema, this is one statement that merges inside the database.
   * With one, the stored value goes through it (and the merged value must pass
   * it, unless `validateOnWrite` is false), which cannot happen inside
   * PostgreSQL: the merge happens here and is written only if the stored value
   * is still the one it merged into (a compare-and-set, tried again when another
   * writer came first): one statement when this storage has just read the value
   * (as grammY's session does), two otherwise.
   *
   * @returns the merged value, as a read would return it
   * @throws StorageValidationError when the stored value or the merged one fails the schema (nothing is written)
   * @throws PostgresStorageError when the stored value is not an object, or (without a schema) the codec cannot merge in the database
   */
  async update(key: string, patch: Partial<T>): Promise<T> {
    const at = this.#context(key);
    checkPatch(patch);
    if (!setsAField(patch)) return this.#currentFields(at);
    const guess = this.#skips.guess(at.key);
    let merged!: T;
    await this.#skips.observeWrite(at.key, async () => {
      const result = this.#rules.schema === undefined ? await this.#mergeInDatabase(at, patch) : await this.#mergeChecked(at, patch, guess);
      merged = result.value;
      return result.text;
    });
    return merged;
  }

  /** `update()` of a patch that sets nothing: the stored object, or `{}` if the schema allows it; writes nothing. */
  async #currentFields(at: KeyContext): Promise<T> {
    let text: string | undefined;
    // Observed as a write, not a read: an update() never arms a skip.
    await this.#skips.observeWrite(at.key, async () => (text = (await this.#fetch(at)).text));
    const current = text === undefined ? undefined : await decodeFromRead(this.#rules, at, text);
    if (current !== undefined) return mergeFields<T>(at, current, {});
    return (await encodeForWrite(this.#rules, at, {} as T)).value;
  }

  async #mergeInDatabase(at: KeyContext, patch: Partial<T>): Promise<{ value: T; text: string }> {
    const params = this.#withTtl([at.key, await encodePatch(this.#rules, at, patch)]);
    const [row] = await this.#run("update", at.grammyKey, this.#statements.merge, params, { missing: "create", once: true });
    if (row === undefined) throw notAnObject(at);
    const text = textOf(row, "value");
    return { value: (await decode(this.#rules.codec, text, at)) as T, text };
  }

  async #mergeChecked(at: KeyContext, patch: Partial<T>, guess: string | undefined): Promise<{ value: T; text: string }> {
    // `known`: the stored text this merge builds on; null when there is no row, undefined when it must be read.
    let known: string | null | undefined = guess;
    for (let attempt = 1; attempt <= MAX_MERGE_ATTEMPTS; attempt += 1) {
      known ??= (await this.#fetch(at)).text ?? null;
      const previous = known === null ? undefined : await decodeFromRead(this.#rules, at, known);
      const next = await encodeForWrite(this.#rules, at, mergeFields<T>(at, previous ?? {}, patch));
      const params = this.#withTtl([at.key, next.text]);
      const [done] =
        known === null
          ? await this.#run("update", at.grammyKey, this.#statements.insertIfAbsent, params, { missing: "create", once: true })
          : await this.#run("update", at.grammyKey, this.#statements.replaceIf, [...params, known], { missing: "create", once: true });
      if (done !== undefined) return next;
      // Another writer came first: merge into what it left, after a pause that spreads out contenders.
      known = undefined;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * attempt));
    }
    throw new PostgresStorageError(
      `update() of key ${showKey(at.grammyKey)} lost to concurrent writers ${MAX_MERGE_ATTEMPTS} times in a row; nothing was written, try again`,
    );
  }

  /**
   * Deletes expired rows, 2 MB of the table (256 blocks) per statement, so
   * that no statement holds the rows of the whole table or runs for long.
   * Expired rows are already invisible; this reclaims their space. Run it
   * from a scheduled job (on Workers, a Cron Trigger).
   *
   * @returns how many rows were deleted
   */
  async prune(): Promise<number> {
    let deleted = 0;
    for (let block = 0; ; block += PRUNE_BLOCKS) {
      const [row] = await this.#run("prune", undefined, this.#statements.prune, [block, PRUNE_BLOCKS, this.#table], { missing: "empty" });
      deleted += Number(row?.deleted ?? 0);
      if (row?.more !== true) return deleted;
    }
  }

  /** Deletes the session stored under `key`; deleting a missing key is not an error. */
  async delete(key: string): Promise<void> {
    const storedKey = this.#storedKey(key);
    await this.#skips.observeWrite(storedKey, async () => {
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
      const value = await decodeFromRead(this.#rules, new KeyContext(key, textOf(row, "key")), textOf(row, "value"));
      if (value !== undefined) yield [key, value];
    }
  }

  /**
   * Creates the table (and its schema) if it does not exist. Idempotent, and
   * safe to run from many processes at once. Never needed with
   * `createTable: true`; useful at deploy time when it is `false`.
   */
  async createTable(): Promise<void> {
    try {
      await retrying(() => this.#withConnection((connection) => this.#createOn(connection)), this.#retry, false);
    } catch (error) {
      throw this.#failure("create table", undefined, error);
    }
  }

  /** The parameters of a write, with the TTL when there is one. */
  #withTtl(params: QueryParameter[]): QueryParameter[] {
    return this.#millisecondsToLive === null ? params : [...params, this.#millisecondsToLive];
  }

  /** Creates the table on `connection`, or waits for the creation this storage already has in flight. */
  #createOn(connection: Connection): Promise<void> {
    this.#creating ??= this.#createNow(connection).finally(() => {
      this.#creating = undefined;
    });
    return this.#creating;
  }

  async #createNow(connection: Connection): Promise<void> {
    const schema = quotedSchemaOf(this.#table);
    if ((await this.#create(connection, tableDdl(this.#table), schema)) === INVALID_SCHEMA_NAME) {
      await this.#create(connection, `CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await this.#create(connection, tableDdl(this.#table));
    }
  }

  /**
   * Runs one DDL statement; losing a creation race counts as success.
   * Answers 3F000 instead of throwing it when the schema may be created first.
   */
  async #create(connection: Connection, ddl: string, schema?: string): Promise<string | void> {
    try {
      await connection.query({ text: ddl, name: "" }, [], false);
    } catch (error) {
      const code = sqlState(error);
      if (code !== undefined && CREATED_CONCURRENTLY.has(code)) return;
      if (code === INVALID_SCHEMA_NAME && schema !== undefined) return code;
      throw this.#failure("create table", undefined, error, ddl);
    }
  }

  async #run(operation: string, key: string | undefined, statement: Statement, params: QueryParameter[], options: RunOptions): Promise<Row[]> {
    try {
      return await this.#attempt(statement, params, options);
    } catch (error) {
      try {
        return await retryAfter(error, () => this.#attempt(statement, params, options), this.#retry, options.once === true);
      } catch (last) {
        throw this.#failure(operation, key, last);
      }
    }
  }

  /**
   * One try on one connection, from the first statement through creating a
   * missing table to the statement again: a pool's connection is checked out
   * once, and kept unless an error broke it.
   */
  async #attempt(statement: Statement, params: QueryParameter[], options: RunOptions): Promise<Row[]> {
    // Written out rather than through #withConnection: every statement passes here, and a closure per call shows.
    const acquired = this.#driver.acquire();
    const connection = acquired instanceof Promise ? await acquired : acquired;
    let broken: unknown;
    try {
      try {
        return await this.#query(connection, statement, params);
      } catch (error) {
        if (sqlState(error) !== UNDEFINED_TABLE) throw error;
        if (options.missing === "empty") return [];
        if (!this.#createTable) throw error;
      }
      await this.#createOn(connection);
      return await this.#query(connection, statement, params);
    } catch (error) {
      if (breaksConnection(error)) broken = error;
      throw error;
    } finally {
      connection.release(broken);
    }
  }

  /** Runs `work` on a connection of the client, and gives it back (to be discarded when an error broke it). */
  async #withConnection<R>(work: (connection: Connection) => Promise<R>): Promise<R> {
    const acquired = this.#driver.acquire();
    const connection = acquired instanceof Promise ? await acquired : acquired;
    let broken: unknown;
    try {
      return await work(connection);
    } catch (error) {
      if (breaksConnection(error)) broken = error;
      throw error;
    } finally {
      connection.release(broken);
    }
  }

  /** Runs a statement, prepared while this storage prepares; the first that finds its preparation lost ends that. */
  async #query(connection: Connection, statement: Statement, params: QueryParameter[]): Promise<Row[]> {
    if (!this.#prepare) return rowsOf(await connection.query(statement, params, false));
    try {
      return rowsOf(await connection.query(statement, params, true));
    } catch (error) {
      if (!PREPARED_STATEMENT_LOST.has(sqlState(error) ?? "")) throw error;
      this.#prepare = false;
      LOST_PREPARATIONS.add(this.#client);
      return rowsOf(await connection.query(statement, params, false));
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

  /** The key as grammY gave it and as it is stored, checked. */
  #context(key: unknown): KeyContext {
    return new KeyContext(key as string, this.#storedKey(key));
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

  #failure(operation: string, key: string | undefined, error: unknown, statement?: string): PostgresStorageError {
    return failure({ operation, key, tableName: this.tableName, table: this.#table, statement }, error);
  }
}

/**
 * Whether an error leaves its connection unfit for the next statement: one the
 * server did not answer with a SQLSTATE (a lost socket, say), or the server's
 * own goodbye (class 08, 57P01…).
 */
function breaksConnection(error: unknown): boolean {
  const code = sqlState(error);
  return code === undefined || code.startsWith("08") || code.startsWith("57P");
}

/** Refuses an option with a message naming it, or passes it on. */
function check<V>(value: V, valid: boolean, problem: string): V {
  if (!valid) throw new PostgresStorageError(problem);
  return value;
}
