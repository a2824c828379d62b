/** How the storage asks the runtime driver to run a statement. */
import type { Trace } from "../observe.ts";

/**
 * How to run a statement: what to do when the table does not exist yet, and
 * whether it may run twice. Made by {@link runOptions} only, so that every
 * such object has one shape: the driver reads them on every statement.
 */
export interface RunOptions {
  /** "empty": the table's absence is the answer (nothing stored); "create": create it and run again. */
  readonly missing: "empty" | "create";
  /** Retry only failures that prove it did not run: it must not take effect twice. */
  readonly onlyIfNotApplied: boolean;
  /** The statement changes nothing (a read inside a write, say): its failure is never in doubt. */
  readonly readsOnly: boolean;
  /** The operation's trace, when the storage is observed: statements, retries and creation are counted into it. */
  readonly trace: Trace | undefined;
  /** Told when the statement succeeded after an earlier try that may have taken effect too. */
  readonly doubt: Doubt | undefined;
}

/** {@link RunOptions}, every field in place. */
export const runOptions = (
  missing: RunOptions["missing"],
  { onlyIfNotApplied = false, readsOnly = false, trace, doubt }: Partial<Omit<RunOptions, "missing">> = {},
): RunOptions => ({ missing, onlyIfNotApplied, readsOnly, trace, doubt });

/** Whether a statement that succeeded on a retry may have taken effect on an earlier try as well. */
export interface Doubt {
  earlierTryMayHaveApplied: boolean;
}
