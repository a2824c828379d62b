import { KeyContext, decode } from "./codec.ts";
import { textOf, type QueryParameter, type Row, type Statement } from "./driver/clients.ts";
import { RuntimeDriver, type RunOptions } from "./driver/runtime-driver.ts";
import { PostgresStorageError, StorageOptionError, inOperation, showKey, type Operation } from "./errors.ts";
import { skippableMs, timeToLive } from "./expiry.ts";
import { keyContext, normalizeKeyBuilder, prefixUpperBound, storedKey, type KeyBuilder } from "./keys.ts";
import type { PostgresStorageOptions } from "./options.ts";
import { retryPolicy } from "./retry.ts";
import { statementsFor, type Statements } from "./statements.ts";
import { DEFAULT_TABLE_NAME, quoteTableName } from "./table.ts";
import {
  checkPatch,
  decodeFromRead,
  encodeForWrite,
  encodePatch,
  mergeFields,
  notAnObject,
  setsAField,
  valueRules,
  type ValueRules,
} from "./values.ts";
import { WriteSkips, type ReadOutcome } from "./write-skips.ts";

const KEY_PAGE_SIZE = 1000;
const ENTRY_PAGE_SIZE = 100;
const PRUNE_BLOCKS = 256;
// Checked updates that keep losing to concurrent writers give up after this many tries.
const MAX_MERGE_ATTEMPTS = 100;

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

  readonly #driver: RuntimeDriver;
  readonly #quotedTable: string;
  readonly #statements: Statements;
  readonly #keys: KeyBuilder;
  readonly #rules: ValueRules<T>;
  readonly #millisecondsToLive: number | null;
  readonly #skips = new WriteSkips();

  /**
   * Checks the options; sends nothing to the database.
   *
   * @throws StorageOptionError when an option is invalid
   */
  constructor(options: PostgresStorageOptions<T>) {
    if (typeof options !== "object" || options === null) {
      throw new StorageOptionError(
        "client",
        "new PostgresStorage({ client }) takes an object of options, with the database client at least",
      );
    }
    this.tableName = options.tableName ?? DEFAULT_TABLE_NAME;
    this.#quotedTable = quoteTableName(this.tableName);
    this.#keys = normalizeKeyBuilder(options.keyBuilder);
    this.#rules = valueRules(options);
    this.#millisecondsToLive = timeToLive(options.millisecondsToLive);
    this.#statements = statementsFor(this.#quotedTable, this.#millisecondsToLive !== null);
    this.#driver = new RuntimeDriver({
      client: options.client,
      prepare: options.prepare ?? true,
      createTable: options.createTable ?? true,
      retry: retryPolicy(options.retry),
      tableName: this.tableName,
      quotedTable: this.#quotedTable,
    });
  }

  /**
   * Reads the session stored under `key`.
   *
   * @returns the value, or `undefined` when there is none (or the table does not exist yet)
   * @throws PostgresStorageError when the read fails; it never resolves to `undefined` on an error,
   * because grammY would then replace the stored session with a fresh one
   */
  async read(key: string): Promise<T | undefined> {
    try {
      const at = keyContext(this.#keys, key);
      const { value } = await this.#skips.observeRead(at.key, async () => {
        const found = await this.#fetch("read", at);
        // Decoded inside the observed read, so that a value that fails to decode arms no skip.
        return {
          ...found,
          value: found.text === undefined ? undefined : await decodeFromRead(this.#rules, at, found.text),
        };
      });
      return value;
    } catch (error) {
      throw this.#in(error, "read", key);
    }
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
    try {
      const at = keyContext(this.#keys, key);
      // Taken before encoding, so that a write refused there uses the skip up too.
      const unchanged = this.#skips.takeSkip(at.key);
      const { text } = await encodeForWrite(this.#rules, at, value);
      if (text === unchanged) return;
      await this.#skips.observeWrite(at.key, async () => {
        await this.#run("write", at, this.#statements.write, this.#withTtl([at.key, text]), { missing: "create" });
        return { text };
      });
    } catch (error) {
      throw this.#in(error, "write", key);
    }
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
   * @throws PostgresStorageError when the stored value is not an object, or (without a schema) the codec cannot merge in
   * the database; with `inDoubt` set when the connection broke after the statement was sent (it may have taken effect)
   */
  async update(key: string, patch: Partial<T>): Promise<T> {
    try {
      const at = keyContext(this.#keys, key);
      checkPatch(patch);
      if (!setsAField(patch)) return await this.#currentFields(at);
      const guess = this.#skips.guess(at.key);
      const merged = await this.#skips.observeWrite(at.key, () =>
        this.#rules.schema === undefined ? this.#mergeInDatabase(at, patch) : this.#mergeChecked(at, patch, guess),
      );
      return merged.value;
    } catch (error) {
      throw this.#in(error, "update", key);
    }
  }

  /** `update()` of a patch that sets nothing: the stored object, or `{}` if the schema allows it; writes nothing. */
  async #currentFields(at: KeyContext): Promise<T> {
    // Observed as a write, not a read: an update() never arms a skip.
    const { text } = await this.#skips.observeWrite(at.key, () => this.#fetch("update", at));
    const current = text === undefined ? undefined : await decodeFromRead(this.#rules, at, text);
    if (current !== undefined) return mergeFields<T>(at, current, {});
    return (await encodeForWrite(this.#rules, at, {} as T)).value;
  }

  async #mergeInDatabase(at: KeyContext, patch: Partial<T>): Promise<{ value: T; text: string }> {
    const params = this.#withTtl([at.key, await encodePatch(this.#rules, at, patch)]);
    const [row] = await this.#run("update", at, this.#statements.merge, params, {
      missing: "create",
      onlyIfNotApplied: true,
    });
    if (row === undefined) throw notAnObject(at);
    const text = textOf(row, "value");
    return { value: (await decode(this.#rules.codec, text, at)) as T, text };
  }

  async #mergeChecked(
    at: KeyContext,
    patch: Partial<T>,
    guess: string | undefined,
  ): Promise<{ value: T; text: string }> {
    // `known`: the stored text this merge builds on; null when there is no row, undefined when it must be read.
    let known: string | null | undefined = guess;
    for (let attempt = 1; attempt <= MAX_MERGE_ATTEMPTS; attempt += 1) {
      known ??= (await this.#fetch("update", at)).text ?? null;
      const previous = known === null ? undefined : await decodeFromRead(this.#rules, at, known);
      const next = await encodeForWrite(this.#rules, at, mergeFields<T>(at, previous ?? {}, patch));
      const params = this.#withTtl([at.key, next.text]);
      const once = { missing: "create", onlyIfNotApplied: true } as const;
      const [done] =
        known === null
          ? await this.#run("update", at, this.#statements.insertIfAbsent, params, once)
          : await this.#run("update", at, this.#statements.replaceIf, [...params, known], once);
      if (done !== undefined) return next;
      // Another writer came first: merge into what it left, after a pause that spreads out contenders.
      known = undefined;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * attempt));
    }
    throw new PostgresStorageError(
      `update() of key ${showKey(at.grammyKey)} lost to concurrent writers ${MAX_MERGE_ATTEMPTS} times in a row; nothing was written, try again`,
    );
  }

  /** Deletes the session stored under `key`; deleting a missing key is not an error. */
  async delete(key: string): Promise<void> {
    try {
      const stored = storedKey(this.#keys, key);
      await this.#skips.observeWrite(stored, async () => {
        await this.#driver.run("delete", key, this.#statements.delete, [stored], { missing: "empty" });
        return { text: undefined };
      });
    } catch (error) {
      throw this.#in(error, "delete", key);
    }
  }

  /** Whether a session is stored under `key`. */
  async has(key: string): Promise<boolean> {
    try {
      const rows = await this.#driver.run("has", key, this.#statements.has, [storedKey(this.#keys, key)], {
        missing: "empty",
      });
      return rows.length > 0;
    } catch (error) {
      throw this.#in(error, "has", key);
    }
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
      let value: T | undefined;
      try {
        value = await decodeFromRead(this.#rules, new KeyContext(key, textOf(row, "key")), textOf(row, "value"));
      } catch (error) {
        throw this.#in(error, "readAll", key);
      }
      if (value !== undefined) yield [key, value];
    }
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
      const params = [block, PRUNE_BLOCKS, this.#quotedTable];
      const [row] = await this.#driver.run("prune", undefined, this.#statements.prune, params, { missing: "empty" });
      deleted += Number(row?.deleted ?? 0);
      if (row?.more !== true) return deleted;
    }
  }

  /**
   * Creates the table (and its schema) if it does not exist. Idempotent, and
   * safe to run from many processes at once. Never needed with
   * `createTable: true`; useful at deploy time when it is `false`.
   */
  createTable(): Promise<void> {
    return this.#driver.createTable();
  }

  /** Runs the read statement: the stored text, and for how long writing it back unchanged needs no statement. */
  async #fetch(operation: Operation, at: KeyContext): Promise<ReadOutcome> {
    const [row] = await this.#run(operation, at, this.#statements.read, [at.key], { missing: "empty" });
    if (row === undefined) return { text: undefined, skippableMs: 0 };
    const msLeft = row.msleft == null ? null : Number(row.msleft);
    return { text: textOf(row, "value"), skippableMs: skippableMs(this.#millisecondsToLive, msLeft) };
  }

  #run(
    operation: Operation,
    at: KeyContext,
    statement: Statement,
    params: QueryParameter[],
    options: RunOptions,
  ): Promise<Row[]> {
    return this.#driver.run(operation, at.grammyKey, statement, params, options);
  }

  /** The parameters of a write, with the TTL when there is one. */
  #withTtl(params: QueryParameter[]): QueryParameter[] {
    return this.#millisecondsToLive === null ? params : [...params, this.#millisecondsToLive];
  }

  async *#scan(withValues: boolean): AsyncGenerator<[key: string, row: Row], void, undefined> {
    const parse = this.#keys.parse;
    if (parse === undefined) {
      throw this.#in(
        new StorageOptionError("keyBuilder", "readAll* needs keyBuilder.parse(storedKey); add it, or use prefixKeys()"),
        "readAll",
      );
    }
    const lower = this.#keys.prefix ?? "";
    const upper = lower === "" ? undefined : prefixUpperBound(lower);
    const pageSize = withValues ? ENTRY_PAGE_SIZE : KEY_PAGE_SIZE;
    let cursor = lower;
    for (let first = true; ; first = false) {
      const text = this.#statements.page({ values: withValues, first, bounded: upper !== undefined });
      const params = upper === undefined ? [cursor, pageSize] : [cursor, upper, pageSize];
      const rows = await this.#driver.run("readAll", undefined, text, params, { missing: "empty" });
      for (const row of rows) {
        const key = parse.call(this.#keys, textOf(row, "key"));
        if (key !== undefined) yield [key, row];
      }
      const last = rows[rows.length - 1];
      if (last === undefined || rows.length < pageSize) return;
      cursor = textOf(last, "key");
    }
  }

  /** An error of an operation, with the operation, key and table it happened in. */
  #in(error: unknown, operation: Operation, key?: unknown): unknown {
    return inOperation(error, operation, typeof key === "string" ? key : undefined, this.tableName);
  }
}
