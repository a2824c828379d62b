/**
 * What the storage tells the people who run the bot: a structured event per
 * operation and per statement (the `onEvent` option), and a span per
 * operation on an OpenTelemetry-compatible tracer (the `tracer` option).
 * Nothing here runs unless one of them is given.
 */
import { sqlState } from "./driver/error-reading.ts";
import { PostgresStorageError, type Operation } from "./errors.ts";

/** How a `write()` was applied; see docs/updates.md. */
export type WriteOutcome =
  /** A plain write: no read of the key was open. */
  | "replaced"
  /** A write-back of an unchanged session: no statement. */
  | "unchanged"
  /**
   * A write-back of an unchanged session whose row needed its expiry renewed, or that was read with another secret
   * and stored again under the current one.
   */
  | "renewed"
  /** A write-back stored with one compare-and-set: nothing else wrote the key meanwhile. */
  | "set"
  /** A write-back merged onto another writer's change. */
  | "merged"
  /** A write-back with nothing left to apply after the merge: the row stays as the other writer left it. */
  | "kept theirs";

/** One storage operation, when it ended. */
export interface OperationEvent {
  /** Always `"operation"`. */
  readonly kind: "operation";
  /** The operation: `"read"`, `"write"`, `"update"`, `"delete"`, `"has"`, `"readAll"`, `"prune"`, `"createTable"`. */
  readonly operation: Operation;
  /** The table name as given. */
  readonly table: string;
  /** The grammY key; only with `logKeys: true` (keys are personal data: chat and user ids). */
  readonly key?: string;
  /** Milliseconds from the call to its end. */
  readonly durationMs: number;
  /** Statements sent, retries and table creation included. */
  readonly statements: number;
  /** Tries after the first, of transient failures. */
  readonly retries: number;
  /** Whether it resolved or rejected. */
  readonly outcome: "ok" | "error";
  /** The SQLSTATE of the failure, when the database reported one. */
  readonly code?: string;
  /** For a failed write: whether it may have taken effect. */
  readonly inDoubt?: boolean;
  /** The failure's class name (`PostgresStorageError`, `StorageValidationError`, …). */
  readonly error?: string;
  /** How a `write()` was applied. */
  readonly write?: WriteOutcome;
  /** Whether this operation created the table. */
  readonly createdTable?: boolean;
  /** Whether this operation found prepared statements lost (a pooler) and ran unprepared from then on. */
  readonly unprepared?: boolean;
}

/** One statement sent to the database. */
export interface StatementEvent {
  /** Always `"statement"`. */
  readonly kind: "statement";
  /** The operation that sent it. */
  readonly operation: Operation;
  /** The table name as given. */
  readonly table: string;
  /** The statement's command: `SELECT`, `INSERT`, `UPDATE`, `DELETE`, `CREATE`; of `WITH x AS (…)`, the command inside. */
  readonly statement: string;
  /** Milliseconds from sending it to its answer. */
  readonly durationMs: number;
  /** Whether it ran as a prepared statement. */
  readonly prepared: boolean;
  /** Whether it was answered or failed. */
  readonly outcome: "ok" | "error";
  /** The SQLSTATE it failed with, when the database reported one. */
  readonly code?: string;
}

/** What `onEvent` receives. */
export type StorageEvent = OperationEvent | StatementEvent;

/** The slice of an OpenTelemetry `Span` the storage calls. */
export interface SpanLike {
  /** Sets one attribute. */
  setAttribute(key: string, value: string | number | boolean): unknown;
  /** Sets the status: code 2 is an error. */
  setStatus(status: { code: number; message?: string }): unknown;
  /** Ends the span. */
  end(): void;
}

/**
 * The slice of an OpenTelemetry `Tracer` the storage calls
 * (`trace.getTracer("my-bot")` of `@opentelemetry/api` is one); typed
 * structurally, so the library imports nothing of OpenTelemetry.
 */
export interface TracerLike {
  /** Starts a span: kind 2 is a client span. */
  startSpan(
    name: string,
    options?: { kind?: number; attributes?: Record<string, string | number | boolean> },
  ): SpanLike;
}

/** The observability options. */
export interface ObserveOptions {
  /** Receives an event per operation and per statement; an error it throws is ignored. */
  readonly onEvent?: ((event: StorageEvent) => void) | undefined;
  /** A tracer to start a span per operation on. */
  readonly tracer?: TracerLike | undefined;
  /** Put the grammY key in events and spans. Defaults to `false`: keys are chat and user ids. */
  readonly logKeys?: boolean | undefined;
}

/** Starts traces of operations, for a storage with `onEvent` or `tracer`. */
export interface Observer {
  /** The trace of an operation that starts now; `key` is kept only with `logKeys: true`. */
  start(operation: Operation, key?: string): Trace;
}

/** What is known of one operation while it runs; the driver counts into it. */
export interface Trace {
  /** Statements sent so far. */
  statements: number;
  /** Tries after the first. */
  retries: number;
  /** How a write was applied. */
  write: WriteOutcome | undefined;
  /** Whether this operation created the table. */
  createdTable: boolean;
  /** Whether this operation found prepared statements lost and ran unprepared. */
  unprepared: boolean;
  /** Records a statement that was sent at `startedAt` and has now answered, or failed with `error`. */
  statement(text: string, startedAt: number, prepared: boolean, error?: unknown): void;
  /** Ends the operation: with `error` when it failed. */
  end(error?: unknown): void;
}

/** An observer for the options, or `undefined` when they ask for nothing (then nothing is traced). */
export function observerOf({ onEvent, tracer, logKeys }: ObserveOptions, table: string): Observer | undefined {
  if (onEvent === undefined && tracer === undefined) return undefined;
  // What the user's hooks throw must not fail the bot's update (or make a write look failed).
  const emit = (event: StorageEvent) => quietly(() => onEvent?.(event));
  return {
    start(operation, grammyKey) {
      const key = logKeys === true ? grammyKey : undefined;
      const startedAt = performance.now();
      const base = { operation, table };
      // OpenTelemetry's SpanKind.CLIENT is 2; nothing of it is imported.
      const span = quietly(() =>
        tracer?.startSpan(`${operation} ${table}`, {
          kind: 2,
          attributes: defined({
            "db.system.name": "postgresql",
            "db.operation.name": operation,
            "db.collection.name": table,
            "db.grammy.key": key,
          }),
        }),
      );
      const trace: Trace = {
        statements: 0,
        retries: 0,
        write: undefined,
        createdTable: false,
        unprepared: false,
        statement(text, sentAt, prepared, error) {
          trace.statements += 1;
          if (onEvent === undefined) return;
          emit(
            defined({
              kind: "statement",
              ...base,
              statement: commandOf(text),
              durationMs: performance.now() - sentAt,
              prepared,
              outcome: error === undefined ? "ok" : "error",
              code: error === undefined ? undefined : sqlState(error),
            }),
          );
        },
        end(error) {
          const failed = error !== undefined;
          const ours = error instanceof PostgresStorageError ? error : undefined;
          const code = ours?.code ?? (failed ? sqlState(error) : undefined);
          const event: OperationEvent = defined({
            kind: "operation",
            ...base,
            key,
            durationMs: performance.now() - startedAt,
            statements: trace.statements,
            retries: trace.retries,
            outcome: failed ? "error" : "ok",
            code,
            inDoubt: ours?.inDoubt || undefined,
            error: failed ? (error instanceof Error ? error.name : typeof error) : undefined,
            write: trace.write,
            createdTable: trace.createdTable || undefined,
            unprepared: trace.unprepared || undefined,
          });
          if (span !== undefined) {
            quietly(() => {
              const attributes = defined({
                "db.grammy.statements": event.statements,
                "db.grammy.retries": event.retries,
                "db.grammy.write": event.write,
                "db.grammy.created_table": event.createdTable,
                "db.grammy.unprepared": event.unprepared,
                "db.response.status_code": code,
                "error.type": event.error,
                "db.grammy.in_doubt": event.inDoubt,
              });
              for (const [name, value] of Object.entries(attributes)) span.setAttribute(name, value);
              // OpenTelemetry's SpanStatusCode.ERROR is 2.
              if (failed) span.setStatus({ code: 2, message: error instanceof Error ? error.message : String(error) });
              span.end();
            });
          }
          emit(event);
        },
      };
      return trace;
    },
  };
}

/** The object without its `undefined` properties, which events and spans leave out. */
function defined<O extends object>(object: O): { [K in keyof O]: Exclude<O[K], undefined> } {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as never;
}

/** Runs a hook of the user's, swallowing what it throws. */
function quietly<R>(hook: () => R): R | undefined {
  try {
    return hook();
  } catch {
    return undefined;
  }
}

/** A statement's command: its first word, or the first word inside the parentheses of `WITH x AS (…)`. */
const commandOf = (text: string) => /^(?:WITH \w+ AS \()?(\w+)/.exec(text)?.[1] ?? text;
