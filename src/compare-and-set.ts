/**
 * The policy of the compare-and-set loops (`update()` with a schema, and
 * write-backs that meet another writer): how often to try, and how long to
 * wait between tries. Transient failures of a single statement are retried by
 * the driver's retry policy, not here.
 */
import type { KeyContext } from "./codec.ts";
import { PostgresStorageError, showKey, type Operation } from "./errors.ts";

/** Sets that keep losing to concurrent writers give up after this many tries. */
export const MAX_SET_ATTEMPTS = 100;

/** Waits a little before the next try, more the more tries were lost, at random: so that contenders spread out. */
export function pauseBeforeRetry(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * attempt));
}

/** The error of a set that lost {@link MAX_SET_ATTEMPTS} times in a row. */
export function attemptsLost(operation: Operation, at: KeyContext): PostgresStorageError {
  return new PostgresStorageError(
    `${operation}() of key ${showKey(at.grammyKey)} lost to concurrent writers ${MAX_SET_ATTEMPTS} times in a row; ` +
      "nothing was written, try again",
  );
}
