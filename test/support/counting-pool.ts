import pg from "pg";
import { databaseUrl } from "./clients.ts";

/** A pg Client class, its `query` its class's own, that records in `statements` the text of each statement it runs. */
function countingClientClass(statements: string[]) {
  return class CountingClient extends pg.Client {
    override query(...args: unknown[]): never {
      const [first] = args as [string | { text: string }];
      statements.push(typeof first === "string" ? first : first.text);
      return (super.query as (...a: unknown[]) => never)(...args);
    }
  };
}

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
  const Client = countingClientClass(statements);
  return { pool: new CountingPool({ connectionString: databaseUrl(), max, Client }), statements, connects };
}

/** A pg Client of a subclass that records the statements it runs, not yet connected. */
export function countingClient() {
  const statements: string[] = [];
  const CountingClient = countingClientClass(statements);
  return { client: new CountingClient({ connectionString: databaseUrl() }), statements };
}
