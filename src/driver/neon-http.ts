/**
 * Neon's `neon()` over HTTP: a function whose `query(text, params)` sends
 * each statement as one fetch, unprepared. Its errors wrap fetch's as `sourceError`; a lost or
 * failed fetch leaves the statement in doubt.
 */
import type { ClientKind, Connection, QueryClient } from "./clients.ts";

/** `neon()`'s query function. */
export const neonHttp: ClientKind = {
  driverFor(client) {
    if (typeof client !== "function" || typeof (client as Partial<QueryClient>).query !== "function") return undefined;
    const sql = client as unknown as QueryClient;
    const connection: Connection = { query: (statement, params) => sql.query(statement.text, params), release() {} };
    return { prepares: false, acquire: () => connection };
  },
  errors: {
    // Neon's answer with a server error; fetch's (undici's) for a connection lost mid-answer.
    inDoubt: { messages: [/HTTP status 5\d\d/i, /fetch failed/i, /other side closed/i] },
    wraps: ["sourceError"],
  },
};
