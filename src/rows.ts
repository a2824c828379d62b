/**
 * The storage's statements on the rows of its table, one key at a time:
 * what each sends and what its answer means.
 */
import type { KeyContext } from "./codec.ts";
import { textOf, type QueryParameter, type Row, type Statement } from "./driver/clients.ts";
import { runOptions, type Doubt, type RunOptions } from "./driver/run-options.ts";
import type { RuntimeDriver } from "./driver/runtime-driver.ts";
import type { Trace } from "./observe.ts";
import { skippableMs } from "./expiry.ts";
import type { Statements } from "./statements.ts";

/** What a read of a key found. */
export interface Found {
  /** The stored text, or `null` when there is no live row. */
  readonly stored: string | null;
  /** For how long after the read was sent the row may be written back unchanged without a statement. */
  readonly quietMs: number;
}

// Statements that must not apply twice are retried only after failures that prove they did not run.
const ONCE = runOptions("create", { onlyIfNotApplied: true });
const RETRIED = runOptions("create");
const EMPTY = runOptions("empty");
const READ = runOptions("empty", { readsOnly: true });
// 2 MB of the table per statement: no statement holds the rows of the whole table, or runs for long.
const PRUNE_BLOCKS = 256;

/** The statements of one storage, run through its driver. */
export class Rows {
  readonly #driver: RuntimeDriver;
  readonly #statements: Statements;
  readonly #ttl: number | null;

  /**
   * @param driver the storage's way to the database
   * @param statements the storage's statements
   * @param ttl the storage's `millisecondsToLive`, or `null`
   */
  constructor(driver: RuntimeDriver, statements: Statements, ttl: number | null) {
    this.#driver = driver;
    this.#statements = statements;
    this.#ttl = ttl;
  }

  /** Reads the live row of a key. */
  async read(at: KeyContext): Promise<Found> {
    const [row] = await this.#run(at, this.#statements.read, [at.key], READ);
    if (row === undefined) return { stored: null, quietMs: Number.POSITIVE_INFINITY };
    const msLeft = row.msleft == null ? null : Number(row.msleft);
    return { stored: textOf(row, "value"), quietMs: skippableMs(this.#ttl, msLeft) };
  }

  /** Stores a text under a key, whatever the row held: last writer wins. */
  async write(at: KeyContext, stored: string): Promise<void> {
    await this.#run(at, this.#statements.write, this.#withTtl(at.key, stored), RETRIED);
  }

  /**
   * Stores `stored` only if the row holds `expected` (`null`: only if there is
   * no live row), in one statement; answers whether it did. With `once`, the
   * set is sent once: after a lost answer it may have applied, and an
   * `update()`'s patch must not apply twice. Without, it is retried like a
   * plain write: if a write-back's lost set applied, the retry finds the row
   * holding the write-back's own value, and the merge that follows has nothing left to apply. `doubt` is told
   * when a retried set succeeded or failed after a try that may have applied. With `expiredToo`, a row that holds
   * `expected` but expired (and that prune() has not deleted yet) is replaced as well.
   */
  async replaceIf(
    at: KeyContext,
    stored: string,
    expected: string | null,
    { once = false, doubt, expiredToo = false }: { once?: boolean; doubt?: Doubt; expiredToo?: boolean } = {},
  ): Promise<boolean> {
    const options = once ? ONCE : doubt === undefined ? RETRIED : runOptions("create", { doubt });
    const rows =
      expected === null
        ? await this.#run(at, this.#statements.insertIfAbsent, this.#withTtl(at.key, stored), options)
        : await this.#run(
            at,
            expiredToo ? this.#statements.replaceIfExpiredToo : this.#statements.replaceIf,
            this.#withTtl(at.key, stored, expected),
            options,
          );
    return rows.length > 0;
  }

  /** Merges a patch's JSON text into the stored object in the database; answers the merged text, or `null` when the stored value is no object. */
  async merge(at: KeyContext, patch: string): Promise<string | null> {
    const [row] = await this.#run(at, this.#statements.merge, this.#withTtl(at.key, patch), ONCE);
    // The statement's answer checked that it is text.
    return row === undefined ? null : (row.value as string);
  }

  /**
   * Deletes the expired rows, `PRUNE_BLOCKS` blocks of the table per
   * statement; answers how many.
   *
   * @param quotedTable the table, quoted, which the statement sizes up
   */
  async prune(quotedTable: string, trace: Trace | undefined): Promise<number> {
    let deleted = 0;
    for (let block = 0; ; block += PRUNE_BLOCKS) {
      const params = [block, PRUNE_BLOCKS, quotedTable];
      const [row] = await this.#driver.run(this.#statements.prune, params, runOptions("empty", { trace }));
      deleted += Number(row?.deleted ?? 0);
      if (Number(row?.more) !== 1) return deleted;
    }
  }

  /** Deletes the row of a key. */
  async delete(at: KeyContext): Promise<void> {
    await this.#run(at, this.#statements.delete, [at.key], EMPTY);
  }

  /** Whether a live row exists under a key. */
  async has(at: KeyContext): Promise<boolean> {
    return (await this.#run(at, this.#statements.has, [at.key], READ)).length > 0;
  }

  #run(at: KeyContext, statement: Statement, params: QueryParameter[], options: RunOptions): Promise<Row[]> {
    const trace = at.trace;
    return this.#driver.run(statement, params, trace ? runOptions(options.missing, { ...options, trace }) : options);
  }

  /** The parameters of a write: key and text, the TTL when there is one, then what the row must hold. */
  #withTtl(key: string, text: string, expected?: string): QueryParameter[] {
    if (this.#ttl === null) return expected === undefined ? [key, text] : [key, text, expected];
    return expected === undefined ? [key, text, this.#ttl] : [key, text, this.#ttl, expected];
  }
}
