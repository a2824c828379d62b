import { describe, expect, expectTypeOf, it } from "vitest";
import { PostgresStorage, PostgresStorageError, type PostgresClient } from "../../src/index.ts";
import { explainFailure } from "../../src/failure.ts";
import { mayHaveApplied, sqlState, transience, type Transience } from "../../src/driver/error-reading.ts";

/**
 * Errors as each driver really raises them, copied field by field (all own
 * fields but `stack`; object-valued ones such as a socket left out) from errors
 * provoked once against PostgreSQL 15 on loopback:
 *
 * - Node 20, pg 8.23.1, postgres.js 3.4.9, @neondatabase/serverless 1.2.0
 *   (through dev/neon-endpoint.ts, with its injected 503 and cut-off
 *   answers), @electric-sql/pglite 0.5.14;
 * - Bun 1.4.5's built-in SQL.
 *
 * "Refused" is port 1 on loopback; "terminated" is `SELECT pg_terminate_backend(pid)`
 * from another connection while `pg_sleep(2)` runs; "dropped" is
 * dev/fault-proxy.ts closing the socket mid-query; shutdowns are
 * `pg_ctl stop` of a throwaway server (fast: 57P01 to running queries;
 * immediate: the socket just closes; smart: 57P03 to new connections while one
 * is open); "too many" opens more connections than its max_connections.
 * Timeouts and cancels run `pg_sleep(1)` (or wait for a lock another
 * transaction holds) with a 200 ms limit: pg's `query_timeout`, the server's
 * `statement_timeout` and `lock_timeout`, postgres.js's `query.cancel()` and
 * `sql.end({ timeout })`, `neon()` with `fetchOptions.signal` (an
 * `AbortSignal.timeout()`, an AbortController aborted in flight or before),
 * Bun's `query.cancel()` and `close({ timeout })`. Bun's `idleTimeout` and
 * `maxLifetime` never end a running query, and neither do postgres.js's
 * `idle_timeout` and `max_lifetime`: they raise nothing to classify.
 *
 * The standby's errors come from dev/pg-cluster.ts's primary and streaming
 * standby: a write on the standby (25006; a demoted primary restarted as a
 * standby says the same), connecting to a standby started with
 * `hot_standby = off` (57P03), and recovery conflicts with
 * `max_standby_streaming_delay = 0` while the primary vacuums rows a standby
 * query may see (40001: ERROR in a running query, FATAL for a session idle in
 * a transaction), and a query on the standby in a database the primary drops
 * (57P04).
 * test/runtimes/bun/errors_test.ts provokes the Bun rows again under Bun and
 * checks that they still look like this.
 */
interface Shape {
  readonly driver: string;
  readonly what: string;
  readonly error: unknown;
  readonly sqlState: string | undefined;
  readonly transience: Transience;
  /** Whether a write that fails with it is in doubt (it may have taken effect). */
  readonly inDoubt: boolean;
  /** What the storage's message says after the driver's, where it says something of its own. */
  readonly hint?: RegExp;
}

const error = (message: string, fields: Record<string, unknown>, base: Error = new Error(message)): Error =>
  Object.assign(base, fields);

// pg's DatabaseError and PGlite's carry these beside `code`.
const missingTable = {
  severity: "ERROR",
  code: "42P01",
  position: "15",
  file: "parse_relation.c",
  line: "1392",
  routine: "parserOpenTable",
};
const adminTerminated = {
  severity: "FATAL",
  code: "57P01",
  file: "postgres.c",
  line: "3211",
  routine: "ProcessInterrupts",
};
// What the storage says of a failed write, after the driver's message.
const TIMED_OUT =
  /\. The client stopped waiting for the answer \(a client-side timeout, such as pg's query_timeout\), but the statement may still commit on the server: it may have taken effect and was not retried; read the key to see\. The server's statement_timeout would cancel it and roll it back instead$/;
const ABORTED =
  /\. It was aborted \(an AbortSignal, or a cancelled query\) after it may have reached the server, which runs it to the end: it may have taken effect and was not retried; read the key to see$/;
const CANCELLED_BY_SERVER =
  /\(SQLSTATE 57014\)\. The server cancelled the statement \(its statement_timeout, or a cancel request\) and rolled it back; a row lock held by another transaction, or a busy server, can keep a statement waiting that long$/;
const NO_ANSWER = /\. No answer came from the server, so it may have taken effect; read the key to see$/;
const CHECK_CONNECTION = /\. Check the connection string, and that the client is connected and not ended$/;

/** The server's fields of a statement it cancelled (57014): `line` 3319 for statement_timeout, 3349 for a cancel request. */
const cancelled = (line: string) => ({
  severity: "ERROR",
  code: "57014",
  file: "postgres.c",
  line,
  routine: "ProcessInterrupts",
});
/** pg's query_timeout; Neon's Pool and Client (pg inside) raise the same. */
const queryReadTimeout = error("Query read timeout", {});
/** neon() over HTTP when the fetch rejects: Neon wraps the fetch's error as sourceError. */
const neonFetchError = (source: unknown) =>
  error(`Error connecting to database: ${String(source)}`, { name: "NeonDbError", sourceError: source });

/** pg's DatabaseError for a backend terminated mid-query; Neon's Pool and Client (pg inside) raise the same. */
const pgTerminated = error("terminating connection due to administrator command", {
  length: 116,
  name: "error",
  ...adminTerminated,
});

/** Bun's PostgresError: its own `code`, the server's SQLSTATE (when the server sent one) in `errno`. */
const bunError = (message: string, fields: Record<string, unknown>) =>
  error(message, { name: "PostgresError", ...fields });

const bun = {
  missingTable: bunError('relation "t" does not exist', {
    code: "ERR_POSTGRES_SERVER_ERROR",
    errno: "42P01",
    severity: "ERROR",
    position: "15",
    file: "parse_relation.c",
    line: "1392",
    routine: "parserOpenTable",
  }),
  syntax: bunError('syntax error at or near "SELEC"', {
    code: "ERR_POSTGRES_SYNTAX_ERROR",
    errno: "42601",
    severity: "ERROR",
    position: "1",
    file: "scan.l",
    line: "1188",
    routine: "scanner_yyerror",
  }),
  notJson: bunError("invalid input syntax for type json", {
    code: "ERR_POSTGRES_SERVER_ERROR",
    errno: "22P02",
    detail: 'Token "not" is invalid.',
    severity: "ERROR",
    where: "JSON data, line 1: not...",
    file: "jsonfuncs.c",
    line: "627",
    routine: "json_ereport_error",
  }),
  noDatabase: bunError('database "nope_db" does not exist', {
    code: "ERR_POSTGRES_SERVER_ERROR",
    errno: "3D000",
    severity: "FATAL",
    file: "postinit.c",
    line: "948",
    routine: "InitPostgres",
  }),
  statementTimeout: bunError("canceling statement due to statement timeout", {
    code: "ERR_POSTGRES_SERVER_ERROR",
    errno: "57014",
    severity: "ERROR",
    file: "postgres.c",
    line: "3319",
    routine: "ProcessInterrupts",
  }),
  terminated: bunError("terminating connection due to administrator command", {
    code: "ERR_POSTGRES_SERVER_ERROR",
    errno: "57P01",
    severity: "FATAL",
    file: "postgres.c",
    line: "3211",
    routine: "ProcessInterrupts",
  }),
  shuttingDown: bunError("the database system is shutting down", {
    code: "ERR_POSTGRES_SERVER_ERROR",
    errno: "57P03",
    severity: "FATAL",
    file: "postmaster.c",
    line: "2430",
    routine: "ProcessStartupPacket",
  }),
  tooMany: bunError("sorry, too many clients already", {
    code: "ERR_POSTGRES_SERVER_ERROR",
    errno: "53300",
    severity: "FATAL",
    file: "proc.c",
    line: "357",
    routine: "InitProcess",
  }),
  // Also for a host name that does not resolve, and for a server that is down.
  refused: bunError("Failed to connect", { code: "ERR_POSTGRES_CONNECTION_REFUSED" }),
  // connectionTimeout: 1 against a listener that never answers.
  connectTimeout: bunError("Connection timeout after 1s (sent startup message, but never received response)", {
    code: "ERR_POSTGRES_CONNECTION_TIMEOUT",
  }),
  // Dropped mid-query (before, during or after the server got it), or an immediate shutdown.
  closed: bunError("Connection closed", { code: "ERR_POSTGRES_CONNECTION_CLOSED" }),
  // query.cancel() while the server runs it: the server cancels it.
  cancelledByUser: bunError("canceling statement due to user request", {
    code: "ERR_POSTGRES_SERVER_ERROR",
    errno: "57014",
    severity: "ERROR",
    file: "postgres.c",
    line: "3349",
    routine: "ProcessInterrupts",
  }),
  // query.cancel() before it ran; Bun raises the same when the connection closes under a cancelled query.
  cancelledQuery: bunError("Query cancelled", {
    code: "ERR_POSTGRES_QUERY_CANCELLED",
    originalLine: 289,
    originalColumn: 31,
    sourceURL: "internal:sql/pool",
  }),
  // close({ timeout }) with a query in flight.
  closedInFlight: bunError("Connection closed", { code: "ERR_POSTGRES_CONNECTION_CLOSED" }),
  // A query on a client after close(), or in flight when close() was called.
  closedClient: bunError("Connection closed", {
    code: "ERR_POSTGRES_CONNECTION_CLOSED",
    originalLine: 289,
    originalColumn: 31,
    sourceURL: "internal:sql/pool",
  }),
};

/** pg's DatabaseErrors from a standby. */
const standby = {
  readOnly: error("cannot execute INSERT in a read-only transaction", {
    length: 118,
    name: "error",
    severity: "ERROR",
    code: "25006",
    file: "utility.c",
    line: "414",
    routine: "PreventCommandIfReadOnly",
  }),
  notAccepting: error("the database system is not accepting connections", {
    length: 149,
    name: "error",
    severity: "FATAL",
    code: "57P03",
    detail: "Hot standby mode is disabled.",
    file: "postmaster.c",
    line: "2424",
    routine: "ProcessStartupPacket",
  }),
  conflict: error("canceling statement due to conflict with recovery", {
    length: 186,
    name: "error",
    severity: "ERROR",
    code: "40001",
    detail: "User query might have needed to see row versions that must be removed.",
    file: "postgres.c",
    line: "3335",
    routine: "ProcessInterrupts",
  }),
  conflictTerminated: error("terminating connection due to conflict with recovery", {
    length: 275,
    name: "error",
    severity: "FATAL",
    code: "40001",
    detail: "User query might have needed to see row versions that must be removed.",
    hint: "In a moment you should be able to reconnect to the database and repeat your command.",
    file: "postgres.c",
    line: "3259",
    routine: "ProcessInterrupts",
  }),
  databaseDropped: error("terminating connection due to conflict with recovery", {
    length: 173,
    name: "error",
    severity: "FATAL",
    code: "57P04",
    detail: "User was connected to a database that must be dropped.",
    file: "postgres.c",
    line: "3200",
    routine: "ProcessInterrupts",
  }),
};

const shapes: Shape[] = [
  {
    driver: "pg",
    what: "missing table (DatabaseError)",
    error: error('relation "t" does not exist', { length: 108, name: "error", ...missingTable }),
    sqlState: "42P01",
    transience: undefined,
    inDoubt: false,
  },
  {
    driver: "pg",
    what: "refused",
    error: error("connect ECONNREFUSED 127.0.0.1:1", {
      errno: -111,
      code: "ECONNREFUSED",
      syscall: "connect",
      address: "127.0.0.1",
      port: 1,
    }),
    sqlState: undefined,
    transience: "not-applied",
    inDoubt: false,
    hint: CHECK_CONNECTION,
  },
  // The server's FATAL can follow a statement it has already committed, so 57P01 mid-query counts as "unknown" (its message).
  {
    driver: "pg",
    what: "terminated mid-query",
    error: pgTerminated,
    sqlState: "57P01",
    transience: "unknown",
    inDoubt: true,
  },
  {
    driver: "pg",
    what: "dropped mid-query, or the next query on a terminated Client",
    error: error("Connection terminated unexpectedly", {}),
    sqlState: undefined,
    transience: "unknown",
    inDoubt: true,
  },
  {
    driver: "pg",
    what: "write on a standby, or on a primary demoted by a failover",
    error: standby.readOnly,
    sqlState: "25006",
    transience: "not-applied",
    inDoubt: false,
  },
  {
    driver: "pg",
    what: "connecting to a standby that takes no connections (hot_standby = off)",
    error: standby.notAccepting,
    sqlState: "57P03",
    transience: "not-applied",
    inDoubt: false,
  },
  {
    driver: "pg",
    what: "a standby's query cancelled by a recovery conflict",
    error: standby.conflict,
    sqlState: "40001",
    transience: "not-applied",
    inDoubt: false,
  },
  // A FATAL: the connection is gone (and discarded); a standby cannot have applied a write, but "terminating
  // connection" on a primary can follow a commit, and the words are the same.
  {
    driver: "pg",
    what: "a standby's session ended by a recovery conflict",
    error: standby.conflictTerminated,
    sqlState: "40001",
    transience: "unknown",
    inDoubt: true,
  },
  // "terminating connection" makes it "unknown", as on a primary, where those words can follow a commit; the
  // connection is discarded (57P…), and a retry finds the database gone (3D000) and stops.
  {
    driver: "pg",
    what: "a standby's session in a database the primary dropped",
    error: standby.databaseDropped,
    sqlState: "57P04",
    transience: "unknown",
    inDoubt: true,
  },
  {
    driver: "pg",
    what: "ended Client",
    error: error("Client was closed and is not queryable", {}),
    sqlState: undefined,
    transience: undefined,
    inDoubt: false,
  },
  {
    // The statement still runs on the server, and commits once it gets its lock.
    driver: "pg",
    what: "query_timeout",
    error: queryReadTimeout,
    sqlState: undefined,
    transience: undefined,
    inDoubt: true,
    hint: TIMED_OUT,
  },
  {
    driver: "pg",
    what: "statement_timeout (the server cancels and rolls back)",
    error: error("canceling statement due to statement timeout", { length: 109, name: "error", ...cancelled("3319") }),
    sqlState: "57014",
    transience: undefined,
    inDoubt: false,
    hint: CANCELLED_BY_SERVER,
  },
  {
    driver: "pg",
    what: "lock_timeout",
    error: error("canceling statement due to lock timeout", {
      length: 108,
      name: "error",
      severity: "ERROR",
      code: "55P03",
      position: "15",
      file: "postgres.c",
      line: "3312",
      routine: "ProcessInterrupts",
    }),
    sqlState: "55P03",
    transience: undefined,
    inDoubt: false,
    hint: /\(SQLSTATE 55P03\)\. The server stopped waiting for a lock \(its lock_timeout\) and rolled the statement back; another transaction holds the row$/,
  },
  {
    // A Client whose connection broke before: pg refuses the statement without sending it.
    driver: "pg",
    what: "broken Client",
    error: error("Client has encountered a connection error and is not queryable", {}),
    sqlState: undefined,
    transience: "not-applied",
    inDoubt: false,
  },

  {
    driver: "postgres.js",
    what: "missing table (PostgresError)",
    error: error('relation "t" does not exist', {
      name: "PostgresError",
      severity_local: "ERROR",
      ...missingTable,
      query: "SELECT * FROM t WHERE key = $1",
      parameters: ["k"],
      args: ["k"],
      types: [0],
    }),
    sqlState: "42P01",
    transience: undefined,
    inDoubt: false,
  },
  {
    // postgres.js reports a backend terminated mid-query this way too, not as 57P01; its errno is its code, a string.
    driver: "postgres.js",
    what: "dropped or terminated mid-query",
    error: error("write CONNECTION_CLOSED 127.0.0.1:5432", {
      code: "CONNECTION_CLOSED",
      errno: "CONNECTION_CLOSED",
      address: ["127.0.0.1"],
      port: [5432],
      query: "SELECT pg_sleep(2)",
      parameters: [],
      args: [],
      types: [],
    }),
    sqlState: undefined,
    transience: "unknown",
    inDoubt: true,
  },
  {
    driver: "postgres.js",
    what: "ended",
    error: error("write CONNECTION_ENDED 127.0.0.1:5432", {
      code: "CONNECTION_ENDED",
      errno: "CONNECTION_ENDED",
      address: ["127.0.0.1"],
      port: [5432],
    }),
    sqlState: undefined,
    transience: undefined,
    inDoubt: false,
  },
  {
    driver: "postgres.js",
    what: "refused",
    error: error("connect ECONNREFUSED 127.0.0.1:1", {
      errno: -111,
      code: "ECONNREFUSED",
      syscall: "connect",
      address: "127.0.0.1",
      port: 1,
      args: [],
      types: null,
    }),
    sqlState: undefined,
    transience: "not-applied",
    inDoubt: false,
  },
  {
    driver: "postgres.js",
    what: "connect timeout",
    error: error("write CONNECT_TIMEOUT 127.0.0.1:40715", {
      code: "CONNECT_TIMEOUT",
      errno: "CONNECT_TIMEOUT",
      address: "127.0.0.1",
      port: 40715,
      args: [],
      types: null,
    }),
    sqlState: undefined,
    transience: "not-applied",
    inDoubt: false,
  },
  {
    driver: "postgres.js",
    what: "query.cancel() while it runs (the server cancels it)",
    error: error("canceling statement due to user request", {
      name: "PostgresError",
      severity_local: "ERROR",
      ...cancelled("3349"),
      query: "SELECT pg_sleep(1)",
      parameters: [],
      args: [],
      types: [],
    }),
    sqlState: "57014",
    transience: undefined,
    inDoubt: false,
    hint: CANCELLED_BY_SERVER,
  },
  {
    // Cancelled before postgres.js handed it to a connection: it says 57014 itself.
    driver: "postgres.js",
    what: "query.cancel() before it was sent",
    error: error("57014: canceling statement due to user request", { code: "57014" }),
    sqlState: "57014",
    transience: undefined,
    inDoubt: false,
  },
  {
    driver: "postgres.js",
    what: "statement_timeout",
    error: error("canceling statement due to statement timeout", {
      name: "PostgresError",
      severity_local: "ERROR",
      ...cancelled("3319"),
      query: "SELECT pg_sleep(1)",
      parameters: [],
      args: [],
      types: [],
    }),
    sqlState: "57014",
    transience: undefined,
    inDoubt: false,
    hint: CANCELLED_BY_SERVER,
  },
  {
    // sql.end({ timeout }) destroys connections with queries in flight; they may have committed.
    driver: "postgres.js",
    what: "end({ timeout }) with the query in flight",
    error: error("write CONNECTION_DESTROYED 127.0.0.1:5432", {
      code: "CONNECTION_DESTROYED",
      errno: "CONNECTION_DESTROYED",
      address: ["127.0.0.1"],
      port: [5432],
      query: "SELECT pg_sleep(1)",
      parameters: [],
      args: [],
      types: [],
    }),
    sqlState: undefined,
    transience: "unknown",
    inDoubt: true,
    hint: NO_ANSWER,
  },

  {
    driver: "neon() HTTP",
    what: "missing table (NeonDbError)",
    error: error('relation "t" does not exist', { name: "NeonDbError", ...missingTable }),
    sqlState: "42P01",
    transience: undefined,
    inDoubt: false,
  },
  {
    driver: "neon() HTTP",
    what: "HTTP 503",
    error: error('Server error (HTTP status 503): {"message":"injected: service unavailable"}', {
      name: "NeonDbError",
    }),
    sqlState: undefined,
    transience: "unknown",
    inDoubt: true,
  },
  {
    // The endpoint was down; "fetch failed" alone cannot say whether the request was sent, and "unknown" outweighs.
    driver: "neon() HTTP",
    what: "fetch failed",
    error: error("Error connecting to database: TypeError: fetch failed", {
      name: "NeonDbError",
      sourceError: error(
        "fetch failed",
        {
          cause: error("connect ECONNREFUSED 127.0.0.1:34251", {
            errno: -111,
            code: "ECONNREFUSED",
            syscall: "connect",
            address: "127.0.0.1",
            port: 34251,
          }),
        },
        new TypeError("fetch failed"),
      ),
    }),
    sqlState: undefined,
    transience: "unknown",
    inDoubt: true,
  },
  {
    driver: "neon() HTTP",
    what: "answer cut off",
    error: error(
      "terminated",
      { cause: error("other side closed", { name: "SocketError", code: "UND_ERR_SOCKET" }) },
      new TypeError("terminated"),
    ),
    sqlState: undefined,
    transience: "unknown",
    inDoubt: true,
  },
  {
    // neon(url, { fetchOptions: { signal: AbortSignal.timeout(200) } }), or a fetchFunction that sets one.
    driver: "neon() HTTP",
    what: "fetch timeout",
    error: neonFetchError(new DOMException("The operation was aborted due to timeout", "TimeoutError")),
    sqlState: undefined,
    transience: undefined,
    inDoubt: true,
    hint: TIMED_OUT,
  },
  {
    // An AbortController's signal, aborted in flight; aborted before the call, the error is the same.
    driver: "neon() HTTP",
    what: "fetch aborted",
    error: neonFetchError(new DOMException("This operation was aborted", "AbortError")),
    sqlState: undefined,
    transience: undefined,
    inDoubt: true,
    hint: ABORTED,
  },
  {
    // controller.abort(reason): fetch rejects with the reason itself, which says nothing of the request.
    driver: "neon() HTTP",
    what: "fetch aborted with a reason",
    error: neonFetchError(new Error("deadline")),
    sqlState: undefined,
    transience: undefined,
    inDoubt: true,
    hint: NO_ANSWER,
  },
  {
    driver: "neon() HTTP",
    what: "statement_timeout",
    error: error("canceling statement due to statement timeout", { name: "NeonDbError", ...cancelled("3319") }),
    sqlState: "57014",
    transience: undefined,
    inDoubt: false,
    hint: CANCELLED_BY_SERVER,
  },

  {
    driver: "Neon WebSocket",
    what: "missing table (pg's DatabaseError)",
    error: error('relation "t" does not exist', { length: 108, name: "error", ...missingTable }),
    sqlState: "42P01",
    transience: undefined,
    inDoubt: false,
  },
  {
    driver: "Neon WebSocket",
    what: "terminated mid-query",
    error: pgTerminated,
    sqlState: "57P01",
    transience: "unknown",
    inDoubt: true,
  },
  {
    // ws's ErrorEvent, whose `message` and `error` are getters: what Pool and Client reject with when the WebSocket cannot open.
    driver: "Neon WebSocket",
    what: "proxy refused",
    error: {
      type: "error",
      message: "connect ECONNREFUSED 127.0.0.1:36735",
      error: error("connect ECONNREFUSED 127.0.0.1:36735", { errno: -111, code: "ECONNREFUSED", syscall: "connect" }),
    },
    sqlState: undefined,
    transience: "not-applied",
    inDoubt: false,
  },
  {
    driver: "Neon WebSocket",
    what: "database refused behind the proxy",
    error: error("Connection terminated unexpectedly", {}),
    sqlState: undefined,
    transience: "unknown",
    inDoubt: true,
  },
  {
    driver: "Neon WebSocket",
    what: "query_timeout (pg's, inside)",
    error: queryReadTimeout,
    sqlState: undefined,
    transience: undefined,
    inDoubt: true,
    hint: TIMED_OUT,
  },

  {
    driver: "PGlite",
    what: "missing table (DatabaseError)",
    error: error('relation "t" does not exist', {
      length: 108,
      name: "error",
      ...missingTable,
      line: "1501",
      query: "SELECT * FROM t WHERE key = $1",
      params: ["k"],
    }),
    sqlState: "42P01",
    transience: undefined,
    inDoubt: false,
  },
  {
    driver: "PGlite",
    what: "closed",
    error: error("PGlite is closed", {}),
    sqlState: undefined,
    transience: undefined,
    inDoubt: false,
  },

  {
    driver: "Bun SQL",
    what: "missing table",
    error: bun.missingTable,
    sqlState: "42P01",
    transience: undefined,
    inDoubt: false,
  },
  {
    driver: "Bun SQL",
    what: "syntax error (a code of its own)",
    error: bun.syntax,
    sqlState: "42601",
    transience: undefined,
    inDoubt: false,
  },
  {
    driver: "Bun SQL",
    what: "codec output that is not JSON",
    error: bun.notJson,
    sqlState: "22P02",
    transience: undefined,
    inDoubt: false,
  },
  {
    driver: "Bun SQL",
    what: "no such database",
    error: bun.noDatabase,
    sqlState: "3D000",
    transience: undefined,
    inDoubt: false,
  },
  {
    driver: "Bun SQL",
    what: "statement timeout",
    error: bun.statementTimeout,
    sqlState: "57014",
    transience: undefined,
    inDoubt: false,
    hint: CANCELLED_BY_SERVER,
  },
  {
    driver: "Bun SQL",
    what: "query.cancel() while it runs (the server cancels it)",
    error: bun.cancelledByUser,
    sqlState: "57014",
    transience: undefined,
    inDoubt: false,
    hint: CANCELLED_BY_SERVER,
  },
  {
    driver: "Bun SQL",
    what: "query.cancel() before it ran, or a cancelled query's connection closed",
    error: bun.cancelledQuery,
    sqlState: undefined,
    transience: undefined,
    inDoubt: true,
    hint: ABORTED,
  },
  {
    driver: "Bun SQL",
    what: "close({ timeout }) with the query in flight",
    error: bun.closedInFlight,
    sqlState: undefined,
    transience: "unknown",
    inDoubt: true,
    hint: NO_ANSWER,
  },
  {
    driver: "Bun SQL",
    what: "terminated mid-query (also a fast shutdown)",
    error: bun.terminated,
    sqlState: "57P01",
    transience: "unknown",
    inDoubt: true,
  },
  {
    driver: "Bun SQL",
    what: "connecting during a smart shutdown",
    error: bun.shuttingDown,
    sqlState: "57P03",
    transience: "not-applied",
    inDoubt: false,
  },
  {
    driver: "Bun SQL",
    what: "too many connections",
    error: bun.tooMany,
    sqlState: "53300",
    transience: "not-applied",
    inDoubt: false,
  },
  {
    driver: "Bun SQL",
    what: "refused, unresolvable host, server down",
    error: bun.refused,
    sqlState: undefined,
    transience: "not-applied",
    inDoubt: false,
  },
  {
    driver: "Bun SQL",
    what: "connect timeout",
    error: bun.connectTimeout,
    sqlState: undefined,
    transience: "not-applied",
    inDoubt: false,
  },
  {
    driver: "Bun SQL",
    what: "dropped mid-query, immediate shutdown",
    error: bun.closed,
    sqlState: undefined,
    transience: "unknown",
    inDoubt: true,
  },
  // Bun says the same for a client closed by its owner; retrying it fails as fast as the first try.
  {
    driver: "Bun SQL",
    what: "closed client",
    error: bun.closedClient,
    sqlState: undefined,
    transience: "unknown",
    inDoubt: true,
  },
];

describe("real driver errors", () => {
  it.each(shapes.map((shape) => [shape.driver, shape.what, shape] as const))(
    "%s, %s",
    async (_driver, _what, shape) => {
      expect(sqlState(shape.error)).toBe(shape.sqlState);
      expect(transience(shape.error)).toBe(shape.transience);
      expect(mayHaveApplied(shape.error)).toBe(shape.inDoubt);
      // A write on a client that fails with it, as the storage reports it (one try; no table creation).
      const client: PostgresClient = { query: () => Promise.reject(shape.error) };
      const failed = (await new PostgresStorage({ client, retry: false, createTable: false })
        .write("k", 1)
        .catch((e: unknown) => e)) as PostgresStorageError;
      expect(failed).toBeInstanceOf(PostgresStorageError);
      expect({ inDoubt: failed.inDoubt, code: failed.code, cause: failed.cause }).toStrictEqual({
        inDoubt: shape.inDoubt,
        code: shape.sqlState,
        cause: shape.error,
      });
      if (shape.hint !== undefined) expect(failed.message).toMatch(shape.hint);
    },
  );

  it("a pool that cannot hand out a connection (pg's connectionTimeoutMillis) never sent the statement", async () => {
    const timedOut = error("timeout exceeded when trying to connect", {});
    const pool = {
      idleCount: 0,
      totalCount: 1,
      connect: () => Promise.reject(timedOut),
      query: () => Promise.reject(new Error("not called")),
    };
    const failed = (await new PostgresStorage({ client: pool as PostgresClient, retry: false })
      .update("k", { n: 1 })
      .catch((e: unknown) => e)) as PostgresStorageError;
    expect({ inDoubt: failed.inDoubt, cause: failed.cause }).toStrictEqual({ inDoubt: false, cause: timedOut });
    // Raised by a statement, the same error could have followed it.
    expect(mayHaveApplied(timedOut)).toBe(true);
  });

  it("never takes Node's numeric errno, or a driver's own code in errno, for a SQLSTATE", () => {
    expect(sqlState({ code: "ECONNREFUSED", errno: -111 })).toBeUndefined();
    expect(sqlState({ code: "CONNECTION_CLOSED", errno: "CONNECTION_CLOSED" })).toBeUndefined();
    expect(sqlState({ code: "ERR_POSTGRES_CONNECTION_CLOSED", errno: 42 })).toBeUndefined();
  });

  const at = { tableName: "sessions", table: '"sessions"' };
  it.each([
    [
      "Bun's missing table on a write",
      "write",
      bun.missingTable,
      /failed: relation "t" does not exist \(SQLSTATE 42P01\)\. Run createTableSql\("sessions"\)/,
    ],
    ["Bun's refused connection", "read", bun.refused, /failed: Failed to connect\. Check the connection string/],
    ["Bun's codec error", "write", bun.notJson, /\(SQLSTATE 22P02\)\. The codec's output must be JSON/],
    ["Bun's terminated update", "update", bun.terminated, /may have taken effect and was not retried/],
    ["Bun's dropped update", "update", bun.closed, /may have taken effect and was not retried/],
    ["pg's missing table on a write", "write", shapes[0]?.error, /\(SQLSTATE 42P01\)\. Run createTableSql/],
    [
      "pg's write on a read-only server",
      "update",
      standby.readOnly,
      /\(SQLSTATE 25006\)\. Connected to a read-only server: a standby, or a primary demoted by a failover; point the connection at the primary/,
    ],
    [
      "pg's connection to a standby without hot standby",
      "read",
      standby.notAccepting,
      /\(SQLSTATE 57P03\)\. The server is starting up/,
    ],
  ] as const)("%s gets its hint", (_label, operation, driverError, message) => {
    // The runtime driver says an operation is in doubt when a try failed in a way that may have applied.
    const wrapped = explainFailure(
      { operation, key: "k", ...at, inDoubt: operation !== "read" && mayHaveApplied(driverError) },
      driverError,
    );
    expect(wrapped).toBeInstanceOf(PostgresStorageError);
    expect(wrapped.message).toMatch(message);
    expect(wrapped.code).toBe(sqlState(driverError));
    expect(wrapped.cause).toBe(driverError);
  });
});

/** A stand-in for Bun's SQL: `unsafe(text, values)` and `options.adapter`, answering from a script. */
function fakeBunSql(answers: ((text: string) => unknown)[], adapter = "postgres") {
  const calls: unknown[][] = [];
  const client = {
    options: { adapter },
    unsafe(...args: unknown[]) {
      calls.push(args);
      const answer = answers.shift() ?? (() => []);
      return (async () => answer(String(args[0])))();
    },
  };
  return { client: client as PostgresClient, calls };
}
const fail = (e: unknown) => () => {
  throw e;
};

describe("Bun's SQL, without Bun", () => {
  it("fits PostgresClient as bun-types declares it", () => {
    // bun-types 1.4.5: `unsafe<T = any>(string: string, values?: any[] | Record<string, any>): SQL.Query<T>`, Query<T> extends Promise<T>.
    type BunSql = {
      unsafe<T = any>(string: string, values?: any[] | Record<string, any>): Promise<T>;
      options: { adapter: string };
    };
    expectTypeOf<BunSql>().toExtend<PostgresClient>();
  });

  it("creates a missing table on the first write, from Bun's 42P01 in errno", async () => {
    const { client, calls } = fakeBunSql([fail(bun.missingTable), () => [], () => []]);
    await new PostgresStorage({ client, tableName: "sessions" }).write("k", { n: 1 });
    expect(calls.map(([text]) => String(text).split(" ")[0])).toStrictEqual(["INSERT", "CREATE", "INSERT"]);
  });

  it("reads a missing table as no value", async () => {
    const { client } = fakeBunSql([fail(bun.missingTable)]);
    await expect(new PostgresStorage({ client }).read("k")).resolves.toBeUndefined();
  });

  it("retries a refused connection, and not a failed one", async () => {
    const refusedOnce = fakeBunSql([fail(bun.refused), () => [{ value: '{"n":1}', msleft: null }]]);
    await expect(
      new PostgresStorage({ client: refusedOnce.client, retry: { baseDelayMs: 1 } }).read("k"),
    ).resolves.toStrictEqual({ n: 1 });
    const syntax = fakeBunSql([fail(bun.syntax), () => []]);
    await expect(
      new PostgresStorage({ client: syntax.client, retry: { baseDelayMs: 1 } }).read("k"),
    ).rejects.toMatchObject({ code: "42601" });
    expect(syntax.calls).toHaveLength(1);
  });

  it("passes Bun no prepare option, which it would ignore (postgres.js gets one)", async () => {
    const { client, calls } = fakeBunSql([() => []]);
    await new PostgresStorage({ client }).read("k");
    expect(calls[0]).toHaveLength(2);
    const postgresJs = { unsafe: (...args: unknown[]) => (calls.push(args), Promise.resolve([])) };
    await new PostgresStorage({ client: postgresJs }).read("k");
    expect(calls[1]?.[2]).toStrictEqual({ prepare: true });
  });

  it("refuses Bun's SQL on SQLite or MySQL", () => {
    expect(() => new PostgresStorage({ client: fakeBunSql([], "sqlite").client })).toThrow(
      /Bun's SQL on sqlite; it must be on PostgreSQL/,
    );
  });
});
