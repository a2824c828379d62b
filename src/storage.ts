import { KeyContext, TAGS_DATES } from "./codec.ts";
import { textOf, type Row } from "./driver/clients.ts";
import { RuntimeDriver } from "./driver/runtime-driver.ts";
import { StorageOptionError, type Operation } from "./errors.ts";
import { inOperation } from "./failure.ts";
import { timeToLive } from "./expiry.ts";
import { keyContext, normalizeKeyBuilder, type KeyBuilder } from "./keys.ts";
import type { PostgresStorageOptions } from "./options.ts";
import { retryPolicy } from "./retry.ts";
import { observerOf, type Observer, type Trace } from "./observe.ts";
import { Rows } from "./rows.ts";
import { scanRows } from "./scan.ts";
import { statementsFor, type Statements } from "./statements.ts";
import { DEFAULT_TABLE_NAME, quoteTableName } from "./table.ts";
import { decodeFromRead, encodeValue, readSession, sealed, valueRules, type ValueRules } from "./values.ts";
import { applyPatch } from "./patch.ts";
import { applyWriteBack, checkOnConflict, mergesWriteBacks, renew, type WriteBackScope } from "./write-back.ts";
import { WriteBacks } from "./write-backs.ts";

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
  readonly #rows: Rows;
  readonly #quotedTable: string;
  readonly #statements: Statements;
  readonly #keys: KeyBuilder;
  readonly #rules: ValueRules<T>;
  readonly #backs = new WriteBacks();
  readonly #writeBack: WriteBackScope<T>;
  readonly #merge: boolean;
  readonly #observer: Observer | undefined;

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
    const ttl = timeToLive(options.millisecondsToLive);
    this.#driver = new RuntimeDriver({
      client: options.client,
      prepare: options.prepare ?? true,
      createTable: options.createTable ?? true,
      retry: retryPolicy(options.retry),
      quotedTable: this.#quotedTable,
    });
    const dateTags = TAGS_DATES in this.#rules.codec;
    this.#statements = statementsFor(this.#quotedTable, { withTtl: ttl !== null, dateTags, driver: this.#driver });
    this.#rows = new Rows(this.#driver, this.#statements, ttl);
    this.#merge = mergesWriteBacks(options.writeBacks);
    this.#observer = observerOf(options, this.tableName);
    this.#writeBack = {
      rows: this.#rows,
      rules: this.#rules,
      backs: this.#backs,
      onConflict: checkOnConflict(options.onConflict),
      quietMs: ttl === null ? Number.POSITIVE_INFINITY : ttl / 2,
    };
  }

  /**
   * Reads the session stored under `key`.
   *
   * @returns the value, or `undefined` when there is none (or the table does not exist yet)
   * @throws PostgresStorageError when the read fails; it never resolves to `undefined` on an error,
   * because grammY would then replace the stored session with a fresh one
   */
  async read(key: string): Promise<T | undefined> {
    const trace = this.#observer?.start("read", key);
    try {
      const at = keyContext(this.#keys, key, trace);
      const sentAt = this.#backs.now();
      const { stored, quietMs } = await this.#rows.read(at);
      // Awaited only when it answers a promise: a read without layers or a schema costs no extra promise.
      let read = readSession(this.#rules, at, stored);
      if (read instanceof Promise) read = await read;
      const { seen: plain, resealFrom, repaired } = read;
      this.#backs.read({ key: at.key, stored, plain, quietUntil: sentAt + quietMs, resealFrom, repaired }, read.value);
      trace?.end();
      return read.value;
    } catch (error) {
      throw this.#in(error, "read", key, trace);
    }
  }

  /**
   * Stores `value` under `key`. A plain write replaces what was there (and pushes its expiry forward), in one
   * `INSERT … ON CONFLICT` statement: when it resolves, the value is in the database, and a later read in any process
   * sees it unless another write, update or delete of the key came after it or overlapped it (or the row expired).
   *
   * A write-back (of a session this storage read, as grammY's session does) applies the change from what was read
   * onto what the row holds now, keeping another writer's change (see `writeBacks`, `onConflict`, docs/updates.md):
   * unchanged, it sends nothing, but renews a TTL that is half gone, and stores a session read with another
   * `encryptedCodec` secret again under its own.
   *
   * @throws StorageValidationError when the value fails the schema (nothing is written)
   * @throws StorageConflictError when `onConflict` is `"throw"` and another writer changed a field this one changed
   * @throws PostgresStorageError when the value cannot be encoded (nothing is written) or the write fails
   */
  async write(key: string, value: T): Promise<void> {
    const trace = this.#observer?.start("write", key);
    try {
      const at = keyContext(this.#keys, key, trace);
      // Taken before encoding, so that a write refused there counts as the write-back of its read all the same.
      const base = this.#backs.take(at.key, value);
      let ours = encodeValue(this.#rules, at, value);
      if (ours instanceof Promise) ours = await ours;
      if (base !== undefined && ours.plain === base.plain) {
        // Unchanged: nothing to apply, unless the row needs renewing (judged now) or storing under the codec's secret.
        if (base.resealFrom !== undefined || this.#backs.now() >= base.quietUntil)
          await renew(this.#writeBack, at, base, value);
        else if (trace !== undefined) trace.write = "unchanged";
      } else if (base !== undefined && this.#merge) {
        await applyWriteBack(this.#writeBack, at, base, value, ours);
      } else {
        let stored = sealed(this.#rules, at, ours.plain);
        if (typeof stored !== "string") stored = await stored;
        await this.#rows.write(at, stored);
        this.#backs.saw(at.key, stored);
        if (trace !== undefined) trace.write = "replaced";
      }
      trace?.end();
    } catch (error) {
      throw this.#in(error, "write", key, trace);
    }
  }

  /**
   * Merges the fields of `patch` into the object stored under `key` (creating
   * it from `patch` when there is none), atomically: concurrent updates of
   * different fields never lose each other, as read-modify-write does. The
   * merge is shallow; a field the patch sets to `undefined` is left as it is
   * (set it to `null`, or `write()` the whole value, to clear it). A patch
   * that sets no field writes nothing and creates no row. The fields keep
   * their order, as `{ ...stored, ...patch }` would.
   *
   * The stored value is taken exactly as `read()` would return it (schema
   * and `onInvalid` included). Without a schema, under a codec that writes
   * objects as JSON objects, this is one statement that merges inside the
   * database; otherwise the merge happens here and is stored with a
   * compare-and-set, tried again when another writer came first (one
   * statement right after this storage's own read, more otherwise). A session
   * written back after an `update()` of its key keeps the update. The rules:
   * docs/updates.md.
   *
   * @returns the merged value, as a read would return it
   * @throws StorageValidationError when the stored value or the merged one fails the schema (nothing is written)
   * @throws StorageOptionError when the patch is not a plain object
   * @throws PostgresStorageError when the stored value is not an object, or the statement fails (with `inDoubt`
   * set when it may have taken effect)
   */
  async update(key: string, patch: Partial<T>): Promise<T> {
    const trace = this.#observer?.start("update", key);
    try {
      const merged = await applyPatch(this.#writeBack, keyContext(this.#keys, key, trace), patch);
      trace?.end();
      return merged;
    } catch (error) {
      throw this.#in(error, "update", key, trace);
    }
  }

  /** Deletes the session stored under `key`; deleting a missing key is not an error. */
  async delete(key: string): Promise<void> {
    const trace = this.#observer?.start("delete", key);
    try {
      const at = keyContext(this.#keys, key, trace);
      // grammY deletes instead of writing back a session set to null or undefined: that closes the read too.
      this.#backs.take(at.key, undefined);
      await this.#rows.delete(at);
      this.#backs.saw(at.key, null);
      trace?.end();
    } catch (error) {
      throw this.#in(error, "delete", key, trace);
    }
  }

  /** Whether a session is stored under `key`. */
  async has(key: string): Promise<boolean> {
    const trace = this.#observer?.start("has", key);
    try {
      const found = await this.#rows.has(keyContext(this.#keys, key, trace));
      trace?.end();
      return found;
    } catch (error) {
      throw this.#in(error, "has", key, trace);
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

  /**
   * Every `[key, value]` pair this storage's key builder owns, paginated like {@link readAllKeys}. A value it yields
   * is no read: a `write()` of it replaces the row (to change sessions while bots run, `update()` them).
   */
  async *readAllEntries(): AsyncGenerator<[key: string, value: T], void, undefined> {
    for await (const [key, row] of this.#scan(true)) {
      const value = await decodeFromRead(
        this.#rules,
        new KeyContext(key, textOf(row, "key")),
        textOf(row, "value"),
      ).catch((error: unknown) => Promise.reject(this.#in(error, "readAll", key)));
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
    const trace = this.#observer?.start("prune");
    try {
      const deleted = await this.#rows.prune(this.#quotedTable, trace);
      trace?.end();
      return deleted;
    } catch (error) {
      throw this.#in(error, "prune", undefined, trace);
    }
  }

  /**
   * Creates the table (and its schema) if it does not exist. Idempotent, and
   * safe to run from many processes at once. Never needed with
   * `createTable: true`; useful at deploy time when it is `false`.
   */
  async createTable(): Promise<void> {
    const trace = this.#observer?.start("createTable");
    try {
      await this.#driver.createTable(trace);
      trace?.end();
    } catch (error) {
      throw this.#in(error, "createTable", undefined, trace);
    }
  }

  async *#scan(withValues: boolean): AsyncGenerator<[key: string, row: Row], void, undefined> {
    const trace = this.#observer?.start("readAll");
    let failure: unknown;
    try {
      yield* scanRows(this.#driver, this.#statements, this.#keys, withValues, trace);
    } catch (error) {
      failure = this.#in(error, "readAll");
      throw failure;
    } finally {
      // Also when the caller stops early (break): the scan ends there.
      trace?.end(failure);
    }
  }

  /** An error of an operation, with the operation, key and table it happened in; it ends the operation's trace. */
  #in(error: unknown, operation: Operation, key?: unknown, trace?: Trace): unknown {
    const named = typeof key === "string" ? key : undefined;
    const failure = inOperation({ operation, key: named, tableName: this.tableName, table: this.#quotedTable }, error);
    trace?.end(failure);
    return failure;
  }
}
