/**
 * Sending a statement to a pg-style client (pg, Neon's and `@vercel/postgres`'s
 * forks) by its callback form, through wrappers that answer by a promise too.
 */
import type { QueryParameter, Statement } from "./clients.ts";

/** How a pg-style client answers a statement given a callback. */
export type Answer = (error: Error | null | undefined, result: unknown) => void;

/** The slice of a pg-style client (pg, Neon and @vercel/postgres Clients and Pools) that prepares named statements. */
export interface NamingClient {
  query(config: Statement, params: QueryParameter[], answer: Answer): unknown;
  query(text: string, params: QueryParameter[], answer: Answer): unknown;
}

/** A statement's result, from {@link callQuery}. */
export function namedQuery(
  client: NamingClient,
  statement: Statement,
  params: QueryParameter[],
  prepared: boolean,
): Promise<unknown> {
  return new Promise((resolve, reject) =>
    callQuery(client, statement, params, prepared, (error, result) => (error ? reject(error) : resolve(result))),
  );
}

/**
 * Sends a statement with pg's callback form, which every pg fork keeps. `answer` may be called twice (a wrapper may
 * answer both by the callback and by a promise): each caller settles once, a promise by its nature. Its promise form,
 * inlined by V8 into a caller this small, fell into a loop of optimizations aborted on a map change once a second
 * pg-style client (Neon's Pool beside pg's) had run in the process: about 20 µs of CPU per statement spent compiling.
 *
 * A prepared statement's config inherits its name and text from the statement, and its values go beside it: pg
 * copies a config's own properties through their descriptors (about 2 µs for three), and an object with none
 * costs it a tenth of that. Older forks (Neon's) set `values` and `callback` on the config, which is this call's own.
 */
export function callQuery(
  client: NamingClient,
  statement: Statement,
  params: QueryParameter[],
  prepared: boolean,
  answer: Answer,
): void {
  const promised = prepared
    ? client.query(Object.create(statement) as Statement, params, answer)
    : client.query(statement.text, params, answer);
  // A wrapper that answers with a promise alone (instrumentation, a test's fake) is answered by its promise; one
  // that passes the callback on and answers with a promise of pg's own answer to it (undefined) leaves the rows to it.
  if (promised !== undefined) {
    Promise.resolve(promised).then(
      (result) => result === undefined || answer(null, result),
      // A failure, even a promise rejected with no reason.
      (error: unknown) => answer((error || new Error(`query() rejected with ${String(error)}`)) as Error, undefined),
    );
  }
}
