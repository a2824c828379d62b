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
  /** A write-back of an unchanged session whose row needed its expiry renewed. */
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
  /** The statement's first word: `SELECT`, `INSERT`, `UPDATE`, `DELETE`, `WITH`, `CREATE`. */
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

// OpenTelemetry's SpanKind.CLIENT and SpanStatusCode.ERROR, as numbers: nothing is imported.
const CLIENT = 2;
const ERROR = 2;

/** Starts traces of operations, for a storage with `onEvent` or `tracer`. */
export class Observer {
  readonly #options: ObserveOptions;
  readonly #table: string;

  /**
   * @param options the storage's observability options
   * @param table the table name as given
   */
  constructor(options: ObserveOptions, table: string) {
    this.#options = options;
    this.#table = table;
  }

  /** The trace of an operation that starts now. */
  start(operation: Operation, key?: string): Trace {
    return new Trace(this.#options, this.#table, operation, this.#options.logKeys === true ? key : undefined);
  }
}

/** An observer for the options, or `undefined` when they ask for nothing (then nothing is traced). */
export function observerOf(options: ObserveOptions, table: string): Observer | undefined {
  return options.onEvent === undefined && options.tracer === undefined ? undefined : new Observer(options, table);
}

/** What is known of one operation while it runs; the driver counts into it. */
export class Trace {
  /** Statements sent so far. */
  statements = 0;
  /** Tries after the first. */
  retries = 0;
  /** How a write was applied. */
  write: WriteOutcome | undefined;
  createdTable = false;
  unprepared = false;
  readonly #options: ObserveOptions;
  readonly #table: string;
  readonly #operation: Operation;
  readonly #key: string | undefined;
  readonly #startedAt = performance.now();
  readonly #span: SpanLike | undefined;

  /**
   * @param options the storage's observability options
   * @param table the table name as given
   * @param operation the operation traced
   * @param key the grammY key, when it may be shown
   */
  constructor(options: ObserveOptions, table: string, operation: Operation, key: string | undefined) {
    this.#options = options;
    this.#table = table;
    this.#operation = operation;
    this.#key = key;
    this.#span = quietly(() =>
      options.tracer?.startSpan(`${operation} ${table}`, {
        kind: CLIENT,
        attributes: {
          "db.system.name": "postgresql",
          "db.operation.name": operation,
          "db.collection.name": table,
          ...(key === undefined ? {} : { "db.grammy.key": key }),
        },
      }),
    );
  }

  /** Records a statement that was sent at `startedAt` and has now answered, or failed with `error`. */
  statement(text: string, startedAt: number, prepared: boolean, error?: unknown): void {
    this.statements += 1;
    if (this.#options.onEvent === undefined) return;
    const code = error === undefined ? undefined : sqlState(error);
    this.#emit({
      kind: "statement",
      operation: this.#operation,
      table: this.#table,
      statement: text.slice(0, text.indexOf(" ")),
      durationMs: performance.now() - startedAt,
      prepared,
      outcome: error === undefined ? "ok" : "error",
      ...(code === undefined ? {} : { code }),
    });
  }

  /** Ends the operation: with `error` when it failed. */
  end(error?: unknown): void {
    const failed = error !== undefined;
    const ours = error instanceof PostgresStorageError ? error : undefined;
    const code = ours?.code ?? (failed ? sqlState(error) : undefined);
    const event: OperationEvent = {
      kind: "operation",
      operation: this.#operation,
      table: this.#table,
      ...(this.#key === undefined ? {} : { key: this.#key }),
      durationMs: performance.now() - this.#startedAt,
      statements: this.statements,
      retries: this.retries,
      outcome: failed ? "error" : "ok",
      ...(code === undefined ? {} : { code }),
      ...(ours?.inDoubt ? { inDoubt: true } : {}),
      ...(failed ? { error: error instanceof Error ? error.name : typeof error } : {}),
      ...(this.write === undefined ? {} : { write: this.write }),
      ...(this.createdTable ? { createdTable: true } : {}),
      ...(this.unprepared ? { unprepared: true } : {}),
    };
    const span = this.#span;
    if (span !== undefined) quietly(() => endSpan(span, event, code, failed, ours, error));
    this.#emit(event);
  }

  #emit(event: StorageEvent): void {
    quietly(() => this.#options.onEvent?.(event));
  }
}

/** Runs a hook of the user's; what it throws must not fail the bot's update (or make a write look failed). */
function quietly<R>(hook: () => R): R | undefined {
  try {
    return hook();
  } catch {
    return undefined;
  }
}

/** Puts what the operation came to on its span, and ends it. */
function endSpan(
  span: SpanLike,
  event: OperationEvent,
  code: string | undefined,
  failed: boolean,
  ours: PostgresStorageError | undefined,
  error: unknown,
): void {
  span.setAttribute("db.grammy.statements", event.statements);
  span.setAttribute("db.grammy.retries", event.retries);
  if (event.write !== undefined) span.setAttribute("db.grammy.write", event.write);
  if (event.createdTable === true) span.setAttribute("db.grammy.created_table", true);
  if (code !== undefined) span.setAttribute("db.response.status_code", code);
  if (failed) {
    span.setAttribute("error.type", event.error ?? "error");
    if (ours?.inDoubt) span.setAttribute("db.grammy.in_doubt", true);
    span.setStatus({ code: ERROR, message: error instanceof Error ? error.message : String(error) });
  }
  span.end();
}
