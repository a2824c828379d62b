/**
 * postgres.js: a `sql` function whose `unsafe(text, params, { prepare })`
 * runs a parameterized statement, prepared by postgres.js's own naming when
 * asked. It pipelines statements on its connections instead of handing them out.
 */
import { countIn, type ClientKind, type Connection, type UnsafeQueryClient } from "./clients.ts";

/** A postgres.js `sql`. */
export const postgresJs: ClientKind = {
  driverFor(client) {
    if (typeof (client as Partial<UnsafeQueryClient>).unsafe !== "function") return undefined;
    const sql = client as UnsafeQueryClient;
    const connection: Connection = {
      query: (statement, params, prepare) => sql.unsafe(statement.text, params, { prepare }),
      release() {},
    };
    return { prepares: true, acquire: () => connection, changedRows: countIn("count") };
  },
  errors: {
    notApplied: { codes: ["CONNECT_TIMEOUT"] },
    inDoubt: { codes: ["CONNECTION_CLOSED", "CONNECTION_DESTROYED"] },
    // After sql.end().
    closed: { codes: ["CONNECTION_ENDED"] },
  },
};
