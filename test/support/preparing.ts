/** One statement a client was asked to run, as {@link recordPreparation} saw it. */
export interface SentStatement {
  readonly text: string;
  /** Sent as a prepared statement: pg's `query({ name, … })` with a name, postgres.js's `unsafe(…, { prepare: true })`. */
  readonly prepared: boolean;
  /** The SQLSTATE it failed with, set once it has failed ("none" when the error had no code). */
  error?: string;
}

/**
 * Wraps a pg Pool or Client, or a postgres.js `sql`, so that every statement
 * sent through it is recorded with whether it was prepared and, once it settles,
 * the SQLSTATE it failed with; a pool's connections handed out by `connect()`
 * are wrapped too. Unlike `countStatements`, this tells named statements from
 * unnamed ones, which is how a storage's preparing can be seen from outside.
 */
export function recordPreparation<C extends object>(client: C): { client: C; sent: SentStatement[] } {
  const sent: SentStatement[] = [];
  const watch = (entry: SentStatement, result: unknown): void => {
    // postgres.js's queries are lazy promises and pg's are promises: one more then() neither runs them twice nor changes what the caller sees.
    (result as PromiseLike<unknown>).then(undefined, (error: { code?: unknown } | null) => {
      entry.error = typeof error?.code === "string" ? error.code : "none";
    });
  };
  const wrapped = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(object, property) {
        const value: unknown = Reflect.get(object, property, object);
        if (typeof value !== "function") return value;
        if (property === "query") {
          return (statement: string | { text: string; name?: string }, ...rest: unknown[]) => {
            const named = typeof statement === "object" && typeof statement.name === "string" && statement.name !== "";
            const entry: SentStatement = {
              text: typeof statement === "string" ? statement : statement.text,
              prepared: named,
            };
            sent.push(entry);
            // Given a callback (pg-pool's own query() gives one, and so does the storage), pg answers through it alone.
            const answer = rest.at(-1);
            if (typeof answer === "function") {
              const answered = (error: { code?: unknown } | null, result: unknown) => {
                if (error) entry.error = typeof error.code === "string" ? error.code : "none";
                answer(error, result);
              };
              return Reflect.apply(value, object, [statement, ...rest.slice(0, -1), answered]);
            }
            const result: unknown = Reflect.apply(value, object, [statement, ...rest]);
            watch(entry, result);
            return result;
          };
        }
        if (property === "unsafe") {
          return (text: string, params?: unknown[], options?: { prepare?: boolean }) => {
            // postgres.js's unsafe() does not prepare unless asked to.
            const entry: SentStatement = { text, prepared: options?.prepare === true };
            sent.push(entry);
            const result: unknown = Reflect.apply(value, object, [text, params, options]);
            watch(entry, result);
            return result;
          };
        }
        if (property === "connect") {
          return async (...args: unknown[]) => {
            const connection: unknown = await Reflect.apply(value, object, args);
            return typeof connection === "object" && connection !== null ? wrapped(connection) : connection;
          };
        }
        return value.bind(object);
      },
    });
  return { client: wrapped(client), sent };
}
