import { StorageOptionError, sqlState } from "./errors.ts";

/**
 * When and how often a failed statement is tried again. Only transient
 * failures are retried: a lost or refused connection, Neon answering with a
 * server error, the server shutting down or starting up (57P01…), a read-only
 * server reached during a failover (25006), serialization failures and
 * deadlocks (40001, 40P01). Everything else surfaces at once.
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
 * How sure it is that a failed statement did not take effect: `"not-applied"`
 * (it never reached the database, or the database rolled it back), `"unknown"`
 * (the connection was lost after it was sent), or `undefined` when the failure
 * is not transient and retrying would not help.
 */
export type Transience = "not-applied" | "unknown" | undefined;

// The database refused or rolled back the statement, or it never left: it did not take effect.
// Bun's SQL says ERR_POSTGRES_CONNECTION_REFUSED also for a host it cannot resolve. A read-only server (25006:
// a standby, or a primary demoted by a failover) refused the write; a standby's recovery conflicts are 40001.
const NOT_APPLIED =
  /^(57P0[123]|25006|40001|40P01|53300|0800[14]|ECONNREFUSED|EAI_AGAIN|CONNECT_TIMEOUT|ERR_POSTGRES_CONNECTION_(REFUSED|TIMEOUT))$/;
// Unreachable hosts count only while connecting: on an open socket they can follow a sent statement.
const UNREACHABLE = /^(EHOSTUNREACH|ENETUNREACH)$/;
// The connection broke with the statement in flight: it may have taken effect.
const UNKNOWN_CODE =
  /^(08(?!00[14])...|ECONNRESET|EPIPE|ETIMEDOUT|(ERR_POSTGRES_)?CONNECTION_CLOSED|CONNECTION_DESTROYED)$/;
const UNKNOWN_MESSAGE =
  /connection terminated|connection error|socket hang up|other side closed|fetch failed|HTTP status 5\d\d|terminating connection/i;

/**
 * Classifies a driver's error, looking through `cause`, Neon's `sourceError`,
 * the `error` of a WebSocket's ErrorEvent (Neon's Pool and Client reject with
 * one when the socket cannot open) and AggregateError; anywhere in that chain,
 * "unknown" outweighs "not-applied".
 */
export function transience(error: unknown): Transience {
  const found = new Set<Transience>();
  const visit = (node: unknown, depth: number): void => {
    if (typeof node !== "object" || node === null || depth > 4) return;
    const { code, syscall, message, name, cause, sourceError, error: inner, errors } = node as Record<string, unknown>;
    // The SQLSTATE wherever the driver put it (Bun: errno), else the driver's own code.
    const text = sqlState(node) ?? (typeof code === "string" ? code : "");
    if (NOT_APPLIED.test(text) || (UNREACHABLE.test(text) && syscall === "connect")) found.add("not-applied");
    // A cut-off answer fails to parse; a timeout aborts the request.
    if (
      UNKNOWN_CODE.test(text) ||
      node instanceof SyntaxError ||
      name === "TimeoutError" ||
      name === "AbortError" ||
      (typeof message === "string" && UNKNOWN_MESSAGE.test(message))
    ) {
      found.add("unknown");
    }
    for (const next of [cause, sourceError, inner, ...(Array.isArray(errors) ? errors : [])]) visit(next, depth + 1);
  };
  visit(error, 0);
  return found.has("unknown") ? "unknown" : found.has("not-applied") ? "not-applied" : undefined;
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
