/**
 * PGlite, PostgreSQL in the process: `query(text, params)` on one session,
 * unprepared (statements prepared by name would collide across storages).
 */
import type { ClientKind, Connection, QueryClient } from "./clients.ts";

/** A PGlite instance: it has `waitReady` and `exec` beside `query`. */
export const pglite: ClientKind = {
  driverFor(client) {
    const { query, exec, waitReady } = client as Partial<QueryClient & Record<"exec" | "waitReady", unknown>>;
    if (typeof query !== "function" || typeof exec !== "function" || waitReady === undefined) return undefined;
    const db = client as QueryClient;
    const connection: Connection = { query: (statement, params) => db.query(statement.text, params), release() {} };
    return { prepares: false, acquire: () => connection };
  },
  errors: { closed: { messages: [/^PGlite is clos(ed|ing)$/] } },
};
