/**
 * The two ways the storage tries again: a statement that failed transiently
 * (the driver's retries, with backoff), and a compare-and-set that lost to
 * another writer (`update()` with a schema, and write-backs that meet another
 * writer's change), which reads the row again and sets it anew.
 */
import type { KeyContext } from "./codec.ts";
import { transience, type Transience } from "./driver/error-reading.ts";
import { PostgresStorageError, StorageOptionError, showKey, type Operation } from "./errors.ts";

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

/** Sets that keep losing to concurrent writers give up after this many tries. */
export const MAX_SET_ATTEMPTS = 100;

/** Waits a little before a compare-and-set's next try, more the more tries were lost, at random: so that contenders spread out. */
export function pauseBeforeRetry(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * attempt));
}

/**
 * The error of a set that lost {@link MAX_SET_ATTEMPTS} times in a row.
 *
 * @param inDoubt whether a try whose answer was lost may have been stored before another writer's change
 */
export function attemptsLost(operation: Operation, at: KeyContext, inDoubt = false): PostgresStorageError {
  return new PostgresStorageError(
    `${operation}() of key ${showKey(at.grammyKey)} lost to concurrent writers ${MAX_SET_ATTEMPTS} times in a row; ` +
      (inDoubt
        ? "a try whose answer was lost may have been written before another writer's change: read the key to see"
        : "nothing was written, try again"),
    { inDoubt },
  );
}
