/**
 * Bun's built-in `SQL` (`new SQL(url)`, `sql` from "bun", a reserved
 * connection). Its `unsafe(text, params)` takes no `prepare`: it prepares as
 * its own `prepare` option says, which no statement can change. Unlike
 * postgres.js, it names its database in `options.adapter`, and its errors
 * carry the SQLSTATE in `errno`, its own code in `code`.
 */
import { StorageOptionError } from "../errors.ts";
import { countIn, type ClientKind, type Connection, type UnsafeQueryClient } from "./clients.ts";

/** Bun's `SQL` on PostgreSQL. */
export const bunSql: ClientKind = {
  driverFor(client) {
    const adapter = (client as { options?: { adapter?: unknown } }).options?.adapter;
    if (typeof (client as Partial<UnsafeQueryClient>).unsafe !== "function" || adapter === undefined) return undefined;
    if (adapter !== "postgres") {
      throw new StorageOptionError(
        "client",
        `client is Bun's SQL on ${String(adapter)}; it must be on PostgreSQL (a postgres:// URL)`,
      );
    }
    const sql = client as UnsafeQueryClient;
    const connection: Connection = { query: (statement, params) => sql.unsafe(statement.text, params), release() {} };
    return { prepares: false, acquire: () => connection, changedRows: countIn("count") };
  },
  errors: {
    // ERR_POSTGRES_CONNECTION_REFUSED also for a host it cannot resolve.
    notApplied: { codes: ["ERR_POSTGRES_CONNECTION_REFUSED", "ERR_POSTGRES_CONNECTION_TIMEOUT"] },
    inDoubt: { codes: ["ERR_POSTGRES_CONNECTION_CLOSED"] },
    // query.cancel().
    aborted: { codes: ["ERR_POSTGRES_QUERY_CANCELLED"] },
    sqlStateField: "errno",
  },
};
