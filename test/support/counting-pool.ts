import pg from "pg";
import { databaseUrl } from "./clients.ts";

/** pg's own `query()` of a client, bound to it, as a subclass calls it. */
export type PgQuery = (...args: unknown[]) => unknown;

/** A pg Client class whose `query()` (its class's own) goes through `around`, given pg's own and the arguments. */
export function clientQueryingThrough(around: (query: PgQuery, args: unknown[]) => unknown) {
  return class extends pg.Client {
    override query(...args: unknown[]): never {
      return around((...a) => (super.query as PgQuery)(...a), args) as never;
    }
  };
}

/** A pg Pool of `max` connections on the suite's database, its clients' `query()` going through `around`. */
export function poolQueryingThrough(around: (query: PgQuery, args: unknown[]) => unknown, max = 1): pg.Pool {
  return new pg.Pool({ connectionString: databaseUrl(), max, Client: clientQueryingThrough(around) });
}

/** pg's `query()` with the result handed to its callback reshaped by `reshape` (when it is given a callback). */
export const reshapingAnswers =
  (reshape: (result: pg.QueryResult) => unknown, only: (text: string) => boolean = () => true) =>
  (query: PgQuery, args: unknown[]): unknown => {
    const answer = args.at(-1);
    const config = args[0] as string | { text: string };
    if (typeof answer !== "function" || !only(typeof config === "string" ? config : config.text)) return query(...args);
    return query(...args.slice(0, -1), (error: Error | null, result?: pg.QueryResult) =>
      answer(error, result && reshape(result)),
    );
  };

/** A `query()` that records the text of each statement in `statements` before pg runs it. */
const recording =
  (statements: string[]) =>
  (query: PgQuery, args: unknown[]): unknown => {
    const [first] = args as [string | { text: string }];
    statements.push(typeof first === "string" ? first : first.text);
    return query(...args);
  };

/** A pg Pool subclass that records the statements its connections run and how connect() was called. */
export function countingPool(max = 2) {
  const statements: string[] = [];
  const connects: number[] = [];
  class CountingPool extends pg.Pool {
    override connect(...args: unknown[]): never {
      connects.push(args.length);
      return (super.connect as (...a: unknown[]) => never)(...args);
    }
  }
  const Client = clientQueryingThrough(recording(statements));
  return { pool: new CountingPool({ connectionString: databaseUrl(), max, Client }), statements, connects };
}

/** A pg Client of a subclass that records the statements it runs, not yet connected. */
export function countingClient() {
  const statements: string[] = [];
  const CountingClient = clientQueryingThrough(recording(statements));
  return { client: new CountingClient({ connectionString: databaseUrl() }), statements };
}
