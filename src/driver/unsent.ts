/**
 * Failures of a try that sent nothing: a pool's checkout that failed, whatever
 * its error says. A proxy that accepts and then finds its server down closes
 * the socket mid-handshake, which pg reports in the words of a connection lost
 * mid-query ("Connection terminated unexpectedly").
 */
import type { SendOutcome } from "./clients.ts";
import { breaksConnection, mayHaveApplied, transience, type Transience } from "./error-reading.ts";

const UNSENT = new WeakSet<object>();

/** Marks the error of a checkout, which sent nothing, and returns it. */
export const unsent = (error: unknown): unknown => {
  if (typeof error === "object" && error !== null) UNSENT.add(error);
  return error;
};

const wasUnsent = (error: unknown) => typeof error === "object" && error !== null && UNSENT.has(error);

/** What a driver's own `send()` is told of its failures. */
export const SEND_OUTCOME: SendOutcome = { unsent, breaks: breaksConnection };

/** {@link transience}, knowing that a failed checkout sent nothing. */
export const classify = (error: unknown): Transience => {
  const kind = transience(error);
  return kind === "unknown" && wasUnsent(error) ? "not-applied" : kind;
};

/** Whether a failed try may have taken effect: not when it failed before its statement was sent. */
export const mayHaveTakenEffect = (error: unknown): boolean => !wasUnsent(error) && mayHaveApplied(error);
