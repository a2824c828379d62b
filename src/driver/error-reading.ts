/**
 * What a driver's error says: its SQLSTATE, what it wraps, and what became of
 * the statement (not applied, in doubt, given up on). The signs every client
 * shares are here; each kind of client adds its own (`ErrorSigns`, in its module).
 */
import { ClientStateError, PostgresStorageError } from "../errors.ts";
import type { ErrorSigns } from "./clients.ts";
import { CLIENT_KINDS } from "./kinds.ts";

/**
 * Whether a failed statement is worth trying again: `"not-applied"` (it never
 * reached the database, or the database rolled it back), `"unknown"` (the
 * connection was lost after it was sent: it may have taken effect), or
 * `undefined` when retrying would not help: the failure is not transient, or
 * the client gave up on the statement (a timeout or an abort, see
 * {@link clientGaveUp}); a retry of that would queue behind the first, still
 * running on the server, and multiply the wait the caller bounded.
 * Whether a failure may have taken effect is {@link mayHaveApplied}.
 */
export type Transience = "not-applied" | "unknown" | undefined;

/** How a client gave up on a statement it may have sent: it stopped waiting ("timeout"), or was told to stop ("abort"). */
export type GaveUp = "timeout" | "abort";

type Sign = Exclude<keyof ErrorSigns, "sqlStateField" | "wraps">;
const signs = CLIENT_KINDS.flatMap((kind) => (kind.errors === undefined ? [] : [kind.errors]));
const codesOf = (sign: Sign, shared: string[] = []) =>
  new Set([...shared, ...signs.flatMap((of) => (of[sign] as { codes?: readonly string[] } | undefined)?.codes ?? [])]);
const messagesOf = (sign: Sign, shared: RegExp[] = []) => [
  ...shared,
  ...signs.flatMap((of) => (of[sign] as { messages?: readonly RegExp[] } | undefined)?.messages ?? []),
];

// The database refused or rolled back the statement, or it never left: it did not take effect. The server shutting
// down or starting up (57P01…), a read-only server (25006: a standby, or a primary demoted by a failover), a
// standby's recovery conflicts and serialization failures (40001), deadlocks, too many connections, a connection
// the server would not set up (08001, 08004); Node's refused connections and failed lookups.
const NOT_APPLIED = codesOf("notApplied", [
  "57P01",
  "57P02",
  "57P03",
  "25006",
  "40001",
  "40P01",
  "53300",
  "08001",
  "08004",
  "ECONNREFUSED",
  "EAI_AGAIN",
]);
const NOT_APPLIED_MESSAGES = messagesOf("notApplied");
// Unreachable hosts count only while connecting: on an open socket they can follow a sent statement.
const UNREACHABLE = new Set(["EHOSTUNREACH", "ENETUNREACH"]);
// The connection broke with the statement in flight: it may have taken effect. Also any other SQLSTATE of class 08.
const IN_DOUBT = codesOf("inDoubt", ["ECONNRESET", "EPIPE", "ETIMEDOUT"]);
const IN_DOUBT_MESSAGES = messagesOf("inDoubt", [/socket hang up/i, /terminating connection/i]);
// Raised before the statement is sent, and not cured by a retry: a client already closed, a host that does not resolve.
const CLOSED = codesOf("closed", ["ENOTFOUND"]);
const CLOSED_MESSAGES = messagesOf("closed");
const TIMED_OUT_MESSAGES = messagesOf("timedOut");
const ABORTED = codesOf("aborted");
const SQLSTATE_FIELDS = ["code", ...signs.flatMap((of) => of.sqlStateField ?? [])];
const WRAPPING_FIELDS = ["cause", "error", ...signs.flatMap((of) => of.wraps ?? [])];

// Five characters with a digit: Node's error codes (EPIPE, EPERM…) are letters only.
const SQLSTATE = /^(?=.*\d)[0-9A-Z]{5}$/;

/**
 * The SQLSTATE a driver attached to its error, if it attached one: in `code`,
 * or where a kind of client puts it instead (Bun's SQL: in `errno`, as a
 * string; Node's errno is a number, such as -111).
 */
export function sqlState(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  for (const field of SQLSTATE_FIELDS) {
    const state = (error as Record<string, unknown>)[field];
    if (typeof state === "string" && SQLSTATE.test(state)) return state;
  }
  return undefined;
}

/**
 * The error objects of a driver's error, itself first, then what it wraps:
 * `cause`, the `error` of a WebSocket's ErrorEvent (Neon's Pool and Client
 * reject with one when the socket cannot open), what a kind of client wraps
 * (Neon's `sourceError`) and AggregateError's `errors`, four links deep at most.
 */
export function errorChain(error: unknown): object[] {
  const chain: object[] = [];
  const visit = (node: unknown, depth: number): void => {
    if (typeof node !== "object" || node === null || depth > 4) return;
    chain.push(node);
    const fields = node as Record<string, unknown>;
    for (const field of WRAPPING_FIELDS) visit(fields[field], depth + 1);
    if (Array.isArray(fields.errors)) for (const next of fields.errors) visit(next, depth + 1);
  };
  visit(error, 0);
  return chain;
}

const matches = (patterns: readonly RegExp[], message: unknown) =>
  typeof message === "string" && patterns.some((pattern) => pattern.test(message));

/**
 * Whether the client gave up on the statement rather than failing: its own
 * timeout (pg's `query_timeout`, "Query read timeout"), a fetch aborted by
 * `AbortSignal.timeout()` (TimeoutError) or by another signal (AbortError),
 * a cancelled query. Nothing of this stops a statement already sent: the
 * server runs it to the end. A timeout the server enforces
 * (`statement_timeout`, 57014) is no such thing: the server cancels the
 * statement and rolls it back.
 */
export function clientGaveUp(error: unknown): GaveUp | undefined {
  let found: GaveUp | undefined;
  for (const node of errorChain(error)) {
    const { name, message, code } = node as Record<string, unknown>;
    if (name === "TimeoutError" || matches(TIMED_OUT_MESSAGES, message)) return "timeout";
    if (name === "AbortError" || (typeof code === "string" && ABORTED.has(code))) found = "abort";
  }
  return found;
}

/**
 * Classifies a driver's error, looking through what it wraps ({@link errorChain});
 * anywhere in that chain, "unknown" outweighs "not-applied", and the client
 * giving up outweighs both.
 */
export function transience(error: unknown): Transience {
  if (clientGaveUp(error) !== undefined) return undefined;
  let found: Transience;
  for (const node of errorChain(error)) {
    const { code, syscall, message } = node as Record<string, unknown>;
    // The SQLSTATE wherever the driver put it, else the driver's own code.
    const text = sqlState(node) ?? (typeof code === "string" ? code : "");
    // A cut-off answer fails to parse.
    if (
      IN_DOUBT.has(text) ||
      (text.length === 5 && text.startsWith("08") && !NOT_APPLIED.has(text)) ||
      node instanceof SyntaxError ||
      matches(IN_DOUBT_MESSAGES, message)
    ) {
      return "unknown";
    }
    if (
      NOT_APPLIED.has(text) ||
      (UNREACHABLE.has(text) && syscall === "connect") ||
      matches(NOT_APPLIED_MESSAGES, message)
    ) {
      found = "not-applied";
    }
  }
  return found;
}

/**
 * Whether a failed statement may have taken effect: it may, unless the error
 * proves it did not. Proof is a SQLSTATE the server answered the statement
 * with (each statement is its own transaction, so an error rolled it back),
 * unless the connection was lost with it ("unknown": 57P01 can follow a
 * commit); an error that says the statement never left ({@link transience}'s
 * "not-applied", a {@link ClientStateError}, a client already closed); nothing
 * else. A timeout or an abort on the client's side (pg's `query_timeout`, an
 * AbortSignal) may have taken effect: the server runs a statement it got to
 * the end, and commits it.
 */
export function mayHaveApplied(error: unknown): boolean {
  const kind = transience(error);
  if (kind !== undefined) return kind === "unknown";
  if (sqlState(error) !== undefined) return false;
  return !errorChain(error).some((node) => {
    const { code, message } = node as Record<string, unknown>;
    return (
      node instanceof ClientStateError ||
      (typeof code === "string" && CLOSED.has(code)) ||
      matches(CLOSED_MESSAGES, message)
    );
  });
}

/**
 * Whether an error leaves its connection unfit for the next statement: one the
 * server did not answer with a SQLSTATE (a lost socket, say, or pg's
 * `query_timeout`, after which the statement still runs on that connection),
 * the server's own goodbye (class 08, 57P01…, any FATAL such as a standby's
 * "terminating connection due to conflict with recovery", 40001), or a
 * read-only server (25006), which the next statement on that connection would reach again. An error of this
 * library's came with a whole answer, one it could not read: the connection is fine.
 */
export function breaksConnection(error: unknown): boolean {
  if (error instanceof PostgresStorageError) return false;
  const code = sqlState(error);
  if (code === undefined || code.startsWith("08") || code.startsWith("57P") || code === "25006") return true;
  const { severity } = error as { severity?: unknown };
  return severity === "FATAL" || severity === "PANIC";
}
