/**
 * When and how often a failed statement is tried again. Only transient
 * failures are retried: a lost or refused connection, Neon answering with a
 * server error, the server shutting down (57P01…), serialization failures and
 * deadlocks (40001, 40P01). Everything else surfaces at once.
 */
export interface RetryOptions {
  /** Tries in all, the first included. Defaults to 3. */
  attempts?: number | undefined;
  /** The wait before the first retry, doubled for each further one (with jitter). Defaults to 50 ms. */
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

// The database refused or rolled back the statement: it did not take effect.
const NOT_APPLIED = /^(57P0[123]|40001|40P01|53300|0800[14]|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|CONNECT_TIMEOUT)$/;
// The connection broke with the statement in flight: it may have taken effect.
const UNKNOWN_CODE = /^(08...|ECONNRESET|EPIPE|ETIMEDOUT|CONNECTION_CLOSED|CONNECTION_DESTROYED)$/;
const UNKNOWN_MESSAGE = /connection terminated|connection error|socket hang up|other side closed|fetch failed|HTTP status 5\d\d|terminating connection/i;

/** Classifies a driver's error, looking through `cause`, Neon's `sourceError` and AggregateError. */
export function transience(error: unknown, depth = 0): Transience {
  if (typeof error !== "object" || error === null || depth > 4) return undefined;
  const { code, message, name, cause, sourceError, errors } = error as Record<string, unknown>;
  if (typeof code === "string" && NOT_APPLIED.test(code)) return "not-applied";
  for (const inner of [cause, sourceError, ...(Array.isArray(errors) ? errors : [])]) {
    const found = transience(inner, depth + 1);
    if (found !== undefined) return found;
  }
  if (typeof code === "string" && UNKNOWN_CODE.test(code)) return "unknown";
  // A cut-off answer fails to parse; a timeout aborts the request.
  if (error instanceof SyntaxError || name === "TimeoutError" || name === "AbortError") return "unknown";
  return typeof message === "string" && UNKNOWN_MESSAGE.test(message) ? "unknown" : undefined;
}

/**
 * Runs `attempt`, retrying transient failures with exponential backoff.
 * With `onlyIfNotApplied`, a failure that may have taken effect is not
 * retried: that is how `update()` never merges one patch twice.
 */
export async function retrying<T>(
  attempt: () => Promise<T>,
  options: RetryOptions | false,
  onlyIfNotApplied: boolean,
): Promise<T> {
  const { attempts = 3, baseDelayMs = 50, maxDelayMs = 1000 } = options || { attempts: 1 };
  for (let tried = 1; ; tried += 1) {
    try {
      return await attempt();
    } catch (error) {
      const kind = transience(error);
      if (tried >= attempts || kind === undefined || (onlyIfNotApplied && kind === "unknown")) throw error;
      const delay = Math.min(maxDelayMs, baseDelayMs * 2 ** (tried - 1));
      await new Promise((resolve) => setTimeout(resolve, delay / 2 + (Math.random() * delay) / 2));
    }
  }
}
