/**
 * Any object with `query(text, params)` resolving to `{ rows }` or the rows:
 * the kind every other client falls back to. Statements go unprepared.
 */
import type { ClientKind, Connection, QueryClient } from "./clients.ts";

/** A `query(text, params)` object. */
export const queryClient: ClientKind = {
  driverFor(client) {
    if (typeof (client as Partial<QueryClient>).query !== "function") return undefined;
    const db = client as QueryClient;
    const connection: Connection = { query: (statement, params) => db.query(statement.text, params), release() {} };
    return { prepares: false, acquire: () => connection };
  },
};
