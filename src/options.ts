import type { Codec } from "./codec.ts";
import type { PostgresClient } from "./driver/clients.ts";
import type { KeyBuilderOption } from "./keys.ts";
import type { StorageEvent, TracerLike } from "./observe.ts";
import type { RetryOptions } from "./retry.ts";
import type { StandardSchema } from "./schema.ts";
import type { OnInvalid } from "./values.ts";
import type { OnConflict } from "./write-back.ts";

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
   * Create the table the first time a write finds it missing (two extra
   * statements, once: the `CREATE` and the write again; two more when its
   * schema is missing too). Defaults to `true`; pass `false` when your migrations own
   * the schema (see `createTableSql`).
   */
  createTable?: boolean | undefined;
  /**
   * A Standard Schema (zod, valibot, arktype, …) that session values must
   * pass. Values are checked on read, and on write unless `validateOnWrite`
   * is `false`; the session type is inferred from it. What is stored is the
   * schema's output, and the next read runs the schema on it, so the schema
   * must accept its own output (`.default()` does; a transform from string to
   * number does not: accept both forms, e.g. `z.coerce.number()`).
   */
  schema?: StandardSchema<T> | undefined;
  /** What a read does with a stored value that fails `schema`. Defaults to `"throw"`. */
  onInvalid?: OnInvalid<T> | undefined;
  /**
   * Check the values you write against `schema` before writing them. Defaults to `true`. A merge the storage makes of
   * a write-back and another writer's change is checked even when `false`.
   */
  validateOnWrite?: boolean | undefined;
  /**
   * Rows expire this long after their last write, on the database's clock;
   * expired rows read as missing, and `prune()` deletes them. Defaults to never.
   */
  millisecondsToLive?: number | undefined;
  /**
   * How transient failures (lost connections, Neon's 5xx, 57P01, 25006, 40001,
   * 40P01) are retried; `false` turns retrying off. Defaults to 6 tries with
   * backoff from 100 ms up to 1 s: 1.25 to 2.5 s in all, longer than a failover
   * to a synchronous standby takes. A statement of `update()` that writes is retried only
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
   * unprepared, and so does every later one of that storage and of storages
   * made on that client afterwards, without failing a call. postgres.js
   * prepares again on its own and cannot fall back: behind such a pooler
   * create it with `postgres(url, { prepare: false })`.
   * Bun's `SQL` prepares as its own `prepare` option says (this one does not
   * apply to it): behind such a pooler use `new SQL({ url, prepare: false })`.
   */
  prepare?: boolean | undefined;
  /**
   * How a write-back (a `write()` of a session this storage read, as grammY's
   * session does after every update) is applied. `"merge"` (the default):
   * as the change from what was read onto what the row holds now, so a change
   * another process (or an `update()` in the handler) made meanwhile is kept;
   * a session written back unchanged sends nothing (unless its TTL is half
   * gone, or `encryptedCodec` read it with another secret). `"overwrite"`: a changed
   * session replaces the row, as a plain write does.
   */
  writeBacks?: "merge" | "overwrite" | undefined;
  /**
   * What a merged write-back does with a field that another writer changed
   * too since the read: `"ours"` (the default) stores the write-back's value,
   * `"theirs"` keeps the other writer's, `"throw"` rejects with a
   * `StorageConflictError` and writes nothing, and a function
   * `(base, ours, theirs, conflict) => value` decides.
   */
  onConflict?: OnConflict<T> | undefined;
  /**
   * Receives a structured event when each operation ends (its duration,
   * statements, retries, outcome and SQLSTATE, how a write was applied) and
   * for each statement sent. Costs nothing when not given. Keys are left out
   * unless `logKeys` is `true`.
   */
  onEvent?: ((event: StorageEvent) => void) | undefined;
  /**
   * An OpenTelemetry tracer (`trace.getTracer("bot")` of `@opentelemetry/api`,
   * or anything of that shape): each operation becomes a client span with
   * the operation, table, statements, retries, outcome and SQLSTATE.
   */
  tracer?: TracerLike | undefined;
  /** Put grammY keys (chat and user ids: personal data) in events and spans. Defaults to `false`. */
  logKeys?: boolean | undefined;
}
