import { ClientStateError, StorageOptionError, clientGaveUp, errorChain, sqlState } from "./errors.ts";

/**
 * When and how often a failed statement is tried again. Only transient
 * failures are retried: a lost or refused connection, Neon answering with a
 * server error, the server shutting down or starting up (57P01…), a read-only
 * server reached during a failover (25006), serialization failures and
 * deadlocks (40001, 40P01). Everything else surfaces at once, a client-side
 * timeout or abort too: the statement may still be running on the server.
 */
export interface RetryOptions {
  /**
   * Tries in all, the first included. Defaults to 6: with the default delays the
   * retries span 1.25 to 2.5 s, longer than a failover to a synchronous standby
   * takes (promotion and a proxy's move: about 0.4 s measured, see RELIABILITY.md).
   */
  attempts?: number | undefined;
  /** The wait before the first retry, doubled for each further one (with jitter). Defaults to 100 ms. */
  baseDelayMs?: number | undefined;
  /** The longest wait between two tries. Defaults to 1000 ms. */
  maxDelayMs?: number | undefined;
}

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

// The database refused or rolled back the statement, or it never left: it did not take effect.
// Bun's SQL says ERR_POSTGRES_CONNECTION_REFUSED also for a host it cannot resolve. A read-only server (25006:
// a standby, or a primary demoted by a failover) refused the write; a standby's recovery conflicts are 40001.
const NOT_APPLIED =
  /^(57P0[123]|25006|40001|40P01|53300|0800[14]|ECONNREFUSED|EAI_AGAIN|CONNECT_TIMEOUT|ERR_POSTGRES_CONNECTION_(REFUSED|TIMEOUT))$/;
// pg refuses a statement on a connection that broke before it, without sending it; a Pool's next connection may do.
const NOT_APPLIED_MESSAGE = /^Client has encountered a connection error and is not queryable$/;
// Unreachable hosts count only while connecting: on an open socket they can follow a sent statement.
const UNREACHABLE = /^(EHOSTUNREACH|ENETUNREACH)$/;
// The connection broke with the statement in flight: it may have taken effect.
const UNKNOWN_CODE =
  /^(08(?!00[14])...|ECONNRESET|EPIPE|ETIMEDOUT|(ERR_POSTGRES_)?CONNECTION_CLOSED|CONNECTION_DESTROYED)$/;
const UNKNOWN_MESSAGE =
  /connection terminated|socket hang up|other side closed|fetch failed|HTTP status 5\d\d|terminating connection/i;

/**
 * Classifies a driver's error, looking through what it wraps ({@link errorChain});
 * anywhere in that chain, "unknown" outweighs "not-applied", and the client
 * giving up outweighs both.
 */
export function transience(error: unknown): Transience {
  if (clientGaveUp(error) !== undefined) return undefined;
  const found = new Set<Transience>();
  for (const node of errorChain(error)) {
    const { code, syscall, message } = node as Record<string, unknown>;
    // The SQLSTATE wherever the driver put it (Bun: errno), else the driver's own code.
    const text = sqlState(node) ?? (typeof code === "string" ? code : "");
    if (
      NOT_APPLIED.test(text) ||
      (UNREACHABLE.test(text) && syscall === "connect") ||
      (typeof message === "string" && NOT_APPLIED_MESSAGE.test(message))
    ) {
      found.add("not-applied");
    }
    // A cut-off answer fails to parse.
    if (
      UNKNOWN_CODE.test(text) ||
      node instanceof SyntaxError ||
      (typeof message === "string" && UNKNOWN_MESSAGE.test(message))
    ) {
      found.add("unknown");
    }
  }
  return found.has("unknown") ? "unknown" : found.has("not-applied") ? "not-applied" : undefined;
}

// Errors without a SQLSTATE that are raised before the statement is sent, and that retrying would not cure:
// a pg Client that was ended (checked before it queues a statement), postgres.js after sql.end(), PGlite closed,
// a host name that does not resolve.
const NEVER_SENT_MESSAGE = /^(Client was closed and is not queryable|PGlite is clos(ed|ing))$/;
const NEVER_SENT_CODE = /^(CONNECTION_ENDED|ENOTFOUND)$/;

/**
 * Whether a failed statement may have taken effect: it may, unless the error
 * proves it did not. Proof is a SQLSTATE the server answered the statement
 * with (each statement is its own transaction, so an error rolled it back),
 * unless the connection was lost with it ("unknown": 57P01 can follow a
 * commit); an error that says the statement never left ({@link transience}'s
 * "not-applied", a {@link ClientStateError}, a client already ended); nothing
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
      (typeof code === "string" && NEVER_SENT_CODE.test(code)) ||
      (typeof message === "string" && NEVER_SENT_MESSAGE.test(message))
    );
  });
}

/** Retry options with their defaults filled in and checked. */
export interface RetryPolicy {
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

/**
 * Fills in and checks the `retry` option.
 *
 * @throws StorageOptionError when a number is out of range
 */
export function retryPolicy(options: RetryOptions | false | undefined): RetryPolicy {
  if (options === false) return { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 };
  const { attempts = 6, baseDelayMs = 100, maxDelayMs = 1000 } = options ?? {};
  if (
    !Number.isInteger(attempts) ||
    attempts < 1 ||
    !(baseDelayMs >= 0 && maxDelayMs >= 0 && baseDelayMs + maxDelayMs < Infinity)
  ) {
    throw new StorageOptionError(
      "retry",
      "retry needs a whole number of attempts from 1 and delays of 0 ms or more; retry: false turns it off",
    );
  }
  return { attempts, baseDelayMs, maxDelayMs };
}

/** Which failures a retry may follow. */
export interface RetryScope {
  /**
   * Retry only failures that prove the statement did not take effect, not
   * those after which it may have: that is how `update()` never writes one
   * patch twice.
   */
  readonly onlyIfNotApplied: boolean;
  /** How to classify a failure, where the caller knows more than the error says; {@link transience} by default. */
  readonly classify?: ((error: unknown) => Transience) | undefined;
}

/** Runs `attempt`, retrying transient failures with exponential backoff. */
export async function retrying<T>(attempt: () => Promise<T>, policy: RetryPolicy, scope: RetryScope): Promise<T> {
  try {
    return await attempt();
  } catch (error) {
    return retryAfter(error, attempt, policy, scope);
  }
}

/**
 * Goes on after a first try of `attempt` failed with `error`, as
 * {@link retrying} does; for callers that make the first try themselves and
 * keep the common case free of this machinery.
 */
export async function retryAfter<T>(
  error: unknown,
  attempt: () => Promise<T>,
  policy: RetryPolicy,
  { onlyIfNotApplied, classify = transience }: RetryScope,
): Promise<T> {
  for (let tried = 1; ; tried += 1) {
    const kind = classify(error);
    if (tried >= policy.attempts || kind === undefined || (onlyIfNotApplied && kind === "unknown")) throw error;
    const delay = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (tried - 1));
    await new Promise((resolve) => setTimeout(resolve, delay / 2 + (Math.random() * delay) / 2));
    try {
      return await attempt();
    } catch (next) {
      error = next;
    }
  }
}
